// The Test then Save form: show the fields that apply, prefill from presets, add header
// rows, and disable Save the moment anything changes after a passing test.
(function () {
  "use strict";

  function form() { return document.getElementById("connection-form"); }
  function data(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : {};
  }
  function value(name) {
    const el = form().elements[name];
    return el ? el.value : "";
  }
  function set(name, v) {
    const el = form().elements[name];
    if (el && v !== undefined) el.value = v;
  }

  // data-show-when="field=value1,value2"
  function applyVisibility() {
    form().querySelectorAll("[data-show-when]").forEach(function (el) {
      const [name, values] = el.dataset.showWhen.split("=");
      const show = values.split(",").includes(value(name));
      el.hidden = !show;
    });
  }

  // Fields that only describe the model or set its prices: the upstream never sees them
  // (the test receipt's fingerprint leaves them out), so changing one keeps the test.
  const INFO = new Set(["integration_name", "description", "model_name", "model_description",
    "gateway_alias", "new_auth_name", "price_input_per_mtok", "price_output_per_mtok"]);

  function invalidateReceipt() {
    const f = form();
    f.querySelectorAll("input[name=test_receipt]").forEach(function (el) { el.remove(); });
    const note = document.getElementById("receipt-note");
    if (note) note.textContent = "The form changed since the last test: test again to enable Save.";
    const save = document.getElementById("save-button");
    if (save) { save.disabled = true; save.title = "Run a passing test first"; }
  }

  function onReceipt() {
    const save = document.getElementById("save-button");
    const receipt = form().querySelector("input[name=test_receipt]");
    if (save && receipt) { save.disabled = false; save.title = ""; }
  }

  function applyPreset() {
    const preset = data("preset-data")[value("preset")];
    if (!preset) return;
    const oldProtocol = value("protocol");
    set("endpoint", preset.endpoint);
    set("protocol", preset.protocol);
    swapTemplate(oldProtocol, preset.protocol);
    if (preset.auth_kind === "none") {
      set("auth_profile", "");
    } else if (value("auth_profile") === "") {
      set("auth_profile", form().dataset.new);
    }
    set("new_auth_kind", preset.auth_kind === "none" ? "bearer" : preset.auth_kind);
    if (preset.header_name) set("new_auth_header_name", preset.header_name);
    if (preset.query_param) set("new_auth_query_param", preset.query_param);
    if (!value("model_id") && preset.example_model) set("model_id", preset.example_model);
    const note = document.getElementById("preset-note");
    if (note) note.textContent = preset.note || "";
    form().elements["endpoint"].dispatchEvent(new Event("change", { bubbles: true }));
  }

  // Follow the protocol's default body unless the user edited it.
  function swapTemplate(oldProtocol, newProtocol) {
    const templates = data("template-data");
    const area = form().elements["request_template"];
    if (!area || oldProtocol === newProtocol) return;
    if (area.value.trim() === "" || area.value.trim() === (templates[oldProtocol] || "").trim()) {
      area.value = templates[newProtocol] || area.value;
    }
  }

  function addHeaderRow() {
    const total = form().elements["headers-TOTAL_FORMS"];
    const html = document.getElementById("header-row-template").innerHTML.replace(/__prefix__/g, total.value);
    document.getElementById("header-rows").insertAdjacentHTML("beforeend", html);
    total.value = String(Number(total.value) + 1);
    invalidateReceipt();
  }

  function init() {
    const f = form();
    if (!f || f.dataset.ready) return;
    f.dataset.ready = "1";
    applyVisibility();
    onReceipt();
    let lastProtocol = value("protocol");
    f.addEventListener("input", function (e) {
      if (!e.target.closest("#test-result") && !INFO.has(e.target.name)) invalidateReceipt();
    });
    f.addEventListener("change", function (e) {
      if (e.target.closest("#test-result")) return;
      if (!INFO.has(e.target.name)) invalidateReceipt();
      if (e.target.name === "preset") applyPreset();
      if (e.target.name === "protocol") { swapTemplate(lastProtocol, value("protocol")); }
      lastProtocol = value("protocol");
      // Where requests go depends on the protocol and the model's kind: show it again.
      if (e.target.name === "protocol" || e.target.name === "kind") {
        form().elements["endpoint"].dispatchEvent(new Event("change", { bubbles: true }));
      }
      if (e.target.name === "secret" || /-secret$/.test(e.target.name)) {
        const input = e.target.closest(".header-row").querySelector("input[name$='-value']");
        input.type = e.target.checked ? "password" : "text";
      }
      applyVisibility();
    });
    f.addEventListener("click", function (e) {
      if (e.target.id === "add-header") addHeaderRow();
      if (e.target.id === "reset-template") {
        form().elements["request_template"].value = data("template-data")[value("protocol")] || "";
        invalidateReceipt();
      }
      const copy = e.target.closest("[data-copy]");
      if (copy) {
        const text = document.querySelector(copy.dataset.copy).textContent;
        navigator.clipboard.writeText(text).then(function () { copy.textContent = "Copied"; });
      }
    });
  }

  // While a test runs, the result panel shows only a spinner and the time so far (the old
  // result is gone); the answer then replaces it and is scrolled into view, since the
  // buttons stick to the bottom of a long form.
  let timer = null;
  let cancelled = false;
  function testing(panel) {
    cancelled = false;
    const started = performance.now();
    const box = document.createElement("div");
    box.className = "result running";
    box.setAttribute("role", "status");
    const spinner = document.createElement("span");
    spinner.className = "spinner";
    spinner.setAttribute("aria-hidden", "true");
    const elapsed = document.createElement("span");
    elapsed.className = "elapsed";
    // A slow model (a small local one can take half a minute) must not hold the page.
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "small";
    cancel.textContent = "Cancel the test";
    cancel.addEventListener("click", function () {
      cancelled = true;
      htmx.trigger(document.getElementById("test-button"), "htmx:abort");
    });
    box.append(spinner, " Testing… ", elapsed, " ", cancel);
    panel.replaceChildren(box);
    const tick = function () {
      elapsed.textContent = ((performance.now() - started) / 1000).toFixed(1) + " s";
    };
    tick();
    timer = setInterval(tick, 100);
    panel.scrollIntoView({ block: "nearest" });
  }
  function settled(panel) {
    clearInterval(timer);
    timer = null;
    panel.scrollIntoView({ block: "start", behavior: "instant" });
    panel.focus({ preventScroll: true });
  }
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (e.detail.elt.id === "test-button") testing(document.getElementById("test-result"));
  });
  document.addEventListener("htmx:afterSettle", function (e) {
    const config = e.detail.requestConfig;
    if (timer === null || !config || !config.elt || config.elt.id !== "test-button") return;
    const panel = document.getElementById("test-result"); // a form with errors replaces it
    if (panel) settled(panel);
    else clearInterval(timer);
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail.elt.id !== "test-button" || e.detail.successful) return;
    clearInterval(timer);
    timer = null;
    const panel = document.getElementById("test-result");
    panel.textContent = cancelled
      ? "Test cancelled. Save stays off until a test passes; change what you need and test again."
      : "The console did not answer. Check your connection and test again.";
  });

  document.addEventListener("DOMContentLoaded", init);
  // After htmx swaps: a new test result may carry a receipt; a re-rendered form needs wiring.
  document.addEventListener("htmx:afterSettle", function () { init(); onReceipt(); applyVisibility(); });
})();
