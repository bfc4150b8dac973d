// Sandbox: stream replies token by token (fetch + server-sent events), Stop, Ctrl/Cmd+Enter,
// the Markdown toggle and copy buttons. Without JavaScript the form posts and the page renders.
(function () {
  "use strict";

  let controller = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function streaming(form) {
    const stream = form.elements["stream"];
    const compare = form.elements["compare"];
    const comparing = compare && Array.from(compare.selectedOptions).some(function (o) {
      return o.value && o.value !== form.elements["model"].value;
    });
    return stream && stream.checked && !comparing;
  }

  function livePanel(modelName) {
    const panel = el("article", "result run-result live");
    const header = el("header");
    header.appendChild(el("strong", "", modelName));
    const status = el("span", "muted", "waiting for the first token…");
    header.appendChild(status);
    panel.appendChild(header);
    const pre = el("pre", "reply");
    panel.appendChild(pre);
    const results = document.getElementById("results");
    results.replaceChildren(panel);
    return { panel: panel, pre: pre, status: status };
  }

  function parseEvents(buffer, onEvent) {
    let index;
    while ((index = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, index);
      buffer = buffer.slice(index + 2);
      let event = "message";
      let data = "";
      chunk.split("\n").forEach(function (line) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        if (line.startsWith("data:")) data += line.slice(5).trim();
      });
      onEvent(event, data ? JSON.parse(data) : {});
    }
    return buffer;
  }

  async function runStream(form) {
    const runButton = document.getElementById("run-button");
    const stopButton = document.getElementById("stop-button");
    controller = new AbortController();
    runButton.disabled = true;
    stopButton.hidden = false;
    const started = performance.now();
    let live = null;
    try {
      const response = await fetch(form.dataset.streamUrl, {
        method: "POST",
        body: new FormData(form),
        signal: controller.signal,
        headers: { "X-CSRFToken": form.elements["csrfmiddlewaretoken"].value },
      });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = parseEvents(buffer + decoder.decode(value, { stream: true }), function (event, data) {
          if (event === "start") live = livePanel(data.model);
          else if (event === "token" && live) {
            if (!live.pre.textContent) {
              live.status.textContent = "first token after " + Math.round(performance.now() - started) + " ms";
            }
            live.pre.textContent += data.t;
          } else if (event === "done") {
            document.getElementById("results").innerHTML = data.html;
          } else if (event === "invalid") {
            form.outerHTML = data.html;
            init();
          } else if (event === "refused") {
            const box = el("div", "error-box");
            box.setAttribute("role", "alert");
            box.appendChild(el("p", "", data.message));
            document.getElementById("results").replaceChildren(box);
          }
        });
      }
    } catch (err) {
      if (live) live.status.textContent = err.name === "AbortError" ? "stopped" : "connection lost";
    } finally {
      controller = null;
      const run = document.getElementById("run-button");
      const stop = document.getElementById("stop-button");
      if (run) run.disabled = false;
      if (stop) stop.hidden = true;
    }
  }

  function init() {
    const form = document.getElementById("sandbox-form");
    if (!form || form.dataset.ready) return;
    form.dataset.ready = "1";
    form.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
  }

  // Capture phase: decide before htmx sees the submit whether this run streams.
  document.addEventListener("submit", function (e) {
    const form = e.target;
    if (form.id !== "sandbox-form" || !streaming(form)) return;
    e.preventDefault();
    e.stopPropagation();
    runStream(form);
  }, true);

  document.addEventListener("click", function (e) {
    if (e.target.id === "stop-button" && controller) controller.abort();
    const copy = e.target.closest("[data-copy]");
    if (copy) {
      navigator.clipboard.writeText(document.querySelector(copy.dataset.copy).textContent)
        .then(function () { copy.textContent = "Copied"; });
    }
  });

  document.addEventListener("change", function (e) {
    if (!e.target.classList.contains("md-toggle")) return;
    const views = e.target.closest(".reply-views");
    views.querySelector("pre.reply").hidden = e.target.checked;
    views.querySelector(".markdown").hidden = !e.target.checked;
  });

  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSettle", init);
})();
