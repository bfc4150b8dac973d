// Sandbox: the conversation (add, edit, delete, continue, clear), {{variables}}, compare
// columns, and streaming every column at once (fetch + server-sent events), each result in
// its column with its own Stop. Stop asks the server to end the stream, so that the run
// it keeps holds the text shown. Without JavaScript the form still posts and the page
// renders the results in their columns.
(function () {
  "use strict";

  const VARIABLE = /\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,39})\s*\}\}/g;
  let streams = []; // {id, controller, stop()} per running column
  const STOP_GRACE_MS = 3000; // a stalled upstream sends nothing to end on: then hang up

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function form() {
    return document.getElementById("sandbox-form");
  }

  function groupId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16)); // plain-http hosts lack randomUUID
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, function (x) { return x.toString(16).padStart(2, "0"); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // --- the conversation ------------------------------------------------------------------

  function renumber() {
    document.querySelectorAll("#turns [data-turn]").forEach(function (turn, i) {
      const n = i + 1;
      turn.querySelector("select").setAttribute("aria-label", "Role of message " + n);
      turn.querySelector("textarea").setAttribute("aria-label", "Message " + n);
      turn.querySelector("[data-delete-turn]").setAttribute("aria-label", "Delete message " + n);
    });
  }

  function addTurn(role, content, extra) {
    const template = document.getElementById("turn-template");
    const turn = template.content.firstElementChild.cloneNode(true);
    turn.querySelector("select").value = role;
    roleChanged(turn.querySelector("select"));
    turn.querySelector("textarea").value = content || "";
    if (extra && extra.calls) {
      turn.querySelector("[name=turn_tool_calls]").value = JSON.stringify(extra.calls);
      const list = el("ul", "tool-calls");
      extra.calls.forEach(function (call) {
        const item = el("li");
        item.appendChild(el("code", "", call.name + "(" + call.arguments + ")"));
        list.appendChild(item);
      });
      turn.querySelector(".turn-body").prepend(list);
    }
    if (extra && extra.callId) {
      turn.querySelector("[name=turn_tool_call_id]").value = extra.callId;
      turn.classList.add("tool-turn");
      const note = el("small", "muted", "Result for call " + extra.callId);
      turn.querySelector(".turn-body").prepend(note);
    }
    document.getElementById("turns").appendChild(turn);
    renumber();
    return turn;
  }

  function sendToolResults(panel, button) {
    // The message sent, the reply with its tool calls, then one result per call; run again.
    const f = form();
    if (!f) { // a run's own page: carry on in the Sandbox
      window.location.href = button.dataset.elsewhere;
      return;
    }
    const draft = f.elements["user_prompt"];
    if (draft.value.trim()) addTurn("user", draft.value);
    draft.value = "";
    const calls = JSON.parse(panel.dataset.toolCalls);
    addTurn("assistant", panel.dataset.reply, { calls: calls });
    calls.forEach(function (call) {
      const input = panel.querySelector('[data-tool-result="' + CSS.escape(call.id) + '"]');
      addTurn("tool", input ? input.value : "", { callId: call.id });
    });
    syncVariables();
    f.requestSubmit(document.getElementById("run-button"));
  }

  function lastRole() {
    const roles = document.querySelectorAll("#turns [data-turn] select");
    return roles.length ? roles[roles.length - 1].value : "assistant";
  }

  function continueFrom(article) {
    // The message just sent becomes a user turn, the reply an assistant turn; write the next.
    const f = form();
    const draft = f.elements["user_prompt"];
    if (draft.value.trim()) addTurn("user", draft.value);
    addTurn("assistant", article.querySelector("pre.reply").textContent);
    draft.value = "";
    syncVariables();
    draft.focus();
  }

  // --- variables -------------------------------------------------------------------------

  function syncVariables() {
    const f = form();
    if (!f) return;
    const names = [];
    f.querySelectorAll("textarea").forEach(function (area) {
      for (const m of area.value.matchAll(VARIABLE)) {
        if (!names.includes(m[1])) names.push(m[1]);
      }
    });
    const box = document.querySelector("#variables .variable-fields");
    const current = {};
    box.querySelectorAll("[data-variable]").forEach(function (input) {
      current[input.dataset.variable] = input.closest(".field");
    });
    names.forEach(function (name) {
      if (current[name]) {
        box.appendChild(current[name]); // keep its value, in order of first use
        delete current[name];
        return;
      }
      const field = el("div", "field");
      const label = el("label", "", name);
      label.htmlFor = "var-" + name;
      const input = el("input");
      input.type = "text";
      input.id = "var-" + name;
      input.name = "var-" + name;
      input.dataset.variable = name;
      field.append(label, input);
      box.appendChild(field);
    });
    Object.values(current).forEach(function (field) { field.remove(); });
    document.querySelector("[data-no-variables]").hidden = names.length > 0;
  }

  function roleChanged(select) {
    const turn = select.closest("[data-turn]");
    ["user", "assistant", "tool"].forEach(function (role) {
      turn.classList.toggle("role-" + role, select.value === role);
    });
    turn.classList.toggle("tool-turn", select.value === "tool");
  }

  // --- compare columns -------------------------------------------------------------------

  function columnIndexes() {
    return Array.from(document.querySelectorAll("#columns [data-column]"), function (c) {
      return Number(c.dataset.column);
    });
  }

  async function addColumn(button) {
    const used = columnIndexes();
    const free = [1, 2, 3].find(function (i) { return !used.includes(i); });
    if (free === undefined) return;
    const response = await fetch(form().dataset.columnUrl + "?column=" + free);
    const holder = el("div");
    holder.innerHTML = await response.text();
    const column = holder.firstElementChild;
    const columns = document.getElementById("columns");
    const after = Array.from(columns.children).find(function (c) { return Number(c.dataset.column) > free; });
    columns.insertBefore(column, after || null);
    if (window.htmx) htmx.process(column);
    button.hidden = columnIndexes().length >= 4;
    columnsChanged();
    column.querySelector("select").focus();
  }

  function columnsChanged() {
    const columns = document.getElementById("columns");
    columns.className = "columns cols-" + columnIndexes().length;
    columns.querySelectorAll("[data-column]").forEach(describeSettings);
  }

  function describeSettings(column) {
    // The folded settings say what they hold: what is sent without opening them.
    const parts = [];
    column.querySelectorAll(".column-params input").forEach(function (input) {
      if (!input.value.trim()) return;
      const label = column.querySelector('label[for="' + input.id + '"]');
      const name = label ? label.firstChild.textContent.trim().toLowerCase() : input.name;
      parts.push(name + " " + input.value.trim().replace(/\n/g, ", "));
    });
    const summary = column.querySelector("[data-settings-summary]");
    if (summary) summary.textContent = parts.length ? "· " + parts.join(" · ") : "· the model's defaults";
  }

  function slotOf(column) {
    return document.getElementById("result-" + column);
  }

  function clearSlots() {
    document.querySelectorAll("[data-result-slot]").forEach(function (slot) { slot.replaceChildren(); });
  }

  // --- streaming -------------------------------------------------------------------------

  function streaming(f) {
    return f.elements["stream"] && f.elements["stream"].checked;
  }

  function showError(message) {
    const box = el("div", "error-box");
    box.setAttribute("role", "alert");
    box.appendChild(el("p", "", message));
    document.getElementById("run-errors").replaceChildren(box);
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

  function livePanel(slot, name, stream) {
    const panel = el("article", "result run-result live");
    const header = el("header");
    header.appendChild(el("strong", "", name));
    const status = el("span", "muted", "waiting for the first token…");
    status.setAttribute("role", "status");
    header.appendChild(status);
    const stop = el("button", "small", "Stop");
    stop.type = "button";
    stop.setAttribute("aria-label", "Stop " + name);
    stop.addEventListener("click", function () { stream.stop(); });
    header.appendChild(stop);
    panel.appendChild(header);
    const pre = el("pre", "reply");
    panel.appendChild(pre);
    slot.replaceChildren(panel);
    return { pre: pre, status: status, stop: stop };
  }

  function stopStreams(which) {
    // Ask the server to end these streams where the browser is; each then sends its run.
    const f = form();
    const live = which.filter(function (s) { return !s.stopping; });
    if (!live.length) return;
    const body = new FormData();
    live.forEach(function (s) {
      s.stopping = true;
      body.append("stream", s.id);
      if (s.live) {
        s.live.status.textContent = "stopping…";
        s.live.stop.disabled = true;
      }
      s.timer = setTimeout(function () { s.controller.abort(); }, STOP_GRACE_MS);
    });
    fetch(f.dataset.stopUrl, {
      method: "POST",
      body: body,
      headers: { "X-CSRFToken": f.elements["csrfmiddlewaretoken"].value },
    }).catch(function () {
      live.forEach(function (s) { s.controller.abort(); });
    });
  }

  async function streamColumn(f, column, slot, group) {
    const stream = { id: groupId(), controller: new AbortController(), live: null };
    stream.stop = function () { stopStreams([stream]); };
    streams.push(stream);
    const controller = stream.controller;
    const body = new FormData(f);
    body.set("column", String(column));
    body.set("stream", stream.id);
    if (group) body.set("group", group);
    const started = performance.now();
    let live = null;
    try {
      const response = await fetch(f.dataset.streamUrl, {
        method: "POST",
        body: body,
        signal: controller.signal,
        headers: { "X-CSRFToken": f.elements["csrfmiddlewaretoken"].value },
      });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = parseEvents(buffer + decoder.decode(value, { stream: true }), function (event, data) {
          if (event === "start") live = stream.live = livePanel(slot, data.model, stream);
          else if (event === "token" && live) {
            if (data.ttft !== undefined && !stream.stopping) {
              // The server's figure, the one the finished run shows.
              live.status.textContent = "first token after " + data.ttft + " ms";
            }
            live.pre.textContent += data.t;
          } else if (event === "done") {
            clearTimeout(stream.timer);
            slot.innerHTML = data.html;
          } else if (event === "invalid") {
            abortAll();
            const current = form();
            if (current) {
              current.outerHTML = data.html;
              init();
            }
          } else if (event === "refused") {
            slot.replaceChildren();
            showError(data.message);
          }
        });
      }
    } catch (err) {
      if (live) {
        const took = Math.round(performance.now() - started);
        live.status.textContent = (err.name === "AbortError" ? "stopped" : "connection lost") +
          " after " + took + " ms; the run is kept in History";
        live.stop.remove();
      }
    }
  }

  async function runStreams(f) {
    const columns = columnIndexes();
    const group = columns.length > 1 ? groupId() : "";
    clearSlots();
    const slots = columns.map(slotOf);
    document.getElementById("run-errors").replaceChildren();
    const runButton = document.getElementById("run-button");
    const stopButton = document.getElementById("stop-button");
    runButton.disabled = true;
    stopButton.hidden = false;
    try {
      await Promise.all(columns.map(function (c, i) { return streamColumn(f, c, slots[i], group); }));
    } finally {
      streams = [];
      const run = document.getElementById("run-button");
      const stop = document.getElementById("stop-button");
      if (run) run.disabled = false;
      if (stop) stop.hidden = true;
    }
  }

  function stopAll() {
    stopStreams(streams);
  }

  function abortAll() {
    streams.forEach(function (s) { s.controller.abort(); });
  }

  // --- wiring ----------------------------------------------------------------------------

  function init() {
    const f = form();
    if (!f || f.dataset.ready) return;
    f.dataset.ready = "1";
    f.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        f.requestSubmit(document.getElementById("run-button"));
      }
    });
    f.addEventListener("input", function (e) {
      if (e.target.tagName === "TEXTAREA") syncVariables();
      const column = e.target.closest(".column-params") && e.target.closest("[data-column]");
      if (column) describeSettings(column);
    });
    f.addEventListener("change", function (e) {
      if (e.target.name === "turn_role") roleChanged(e.target);
    });
    f.addEventListener("htmx:beforeRequest", function (e) {
      if (e.detail.elt === f) clearSlots(); // a run without streaming: results land in columns
    });
    columnsChanged();
  }

  // Capture phase: decide before htmx sees the submit whether this run streams.
  document.addEventListener("submit", function (e) {
    const f = e.target;
    if (f.id !== "sandbox-form" || !streaming(f)) return;
    if (e.submitter && e.submitter.hasAttribute("formaction")) return; // Save prompt
    e.preventDefault();
    e.stopPropagation();
    runStreams(f);
  }, true);

  document.addEventListener("click", function (e) {
    const link = e.target.closest("a[data-continue]");
    if (link && form()) { // on a run's own page the link opens it in the Sandbox
      e.preventDefault();
      continueFrom(link.closest("article"));
      return;
    }
    const target = e.target.closest("button");
    if (!target) return;
    if (target.id === "stop-button") stopAll();
    else if (target.matches("[data-add-turn]")) {
      addTurn(lastRole() === "user" ? "assistant" : "user").querySelector("textarea").focus();
    } else if (target.matches("[data-delete-turn]")) {
      target.closest("[data-turn]").remove();
      renumber();
      syncVariables();
    } else if (target.matches("[data-clear-conversation]")) {
      document.getElementById("turns").replaceChildren();
      form().elements["user_prompt"].value = "";
      syncVariables();
    } else if (target.matches("[data-send-tool-results]")) {
      sendToolResults(target.closest("[data-tool-calls]"), target);
    } else if (target.matches("[data-add-column]")) {
      addColumn(target);
    } else if (target.matches("[data-remove-column]")) {
      target.closest("[data-column]").remove();
      document.querySelector("[data-add-column]").hidden = false;
      columnsChanged();
    } else if (target.matches("[data-raw-toggle]")) {
      const views = target.closest(".reply-views");
      const raw = target.getAttribute("aria-pressed") !== "true";
      target.setAttribute("aria-pressed", String(raw));
      views.querySelector("pre.reply").hidden = !raw;
      views.querySelector(".markdown").hidden = raw;
    }
  });

  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSettle", function (e) {
    init();
    const column = e.target.closest && e.target.closest("[data-column]");
    if (column) describeSettings(column); // a picked model's parameters were loaded
  });
})();
