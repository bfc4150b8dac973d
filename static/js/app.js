// Behaviour shared by every page, kept out of the HTML so the CSP can forbid inline script.
(function () {
  "use strict";

  // <button data-copy="#some-id">: copy that element's text.
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.querySelector(button.dataset.copy);
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent).then(function () {
      button.textContent = "Copied";
    });
  });

  // Fields marked data-show-when="kind=bearer,header" show only for those values.
  function applyShowWhen(form) {
    form.querySelectorAll("[data-show-when]").forEach(function (el) {
      const [name, values] = el.dataset.showWhen.split("=");
      const field = form.elements[name];
      if (field) el.hidden = !values.split(",").includes(field.value);
    });
  }
  function initForms(root) {
    root.querySelectorAll("form[data-show-when-form]").forEach(function (form) {
      if (form.dataset.showWhenReady) return;
      form.dataset.showWhenReady = "1";
      form.addEventListener("change", function () { applyShowWhen(form); });
      applyShowWhen(form);
    });
  }
  // On phones the nav folds behind a Menu button (shown only when this script runs).
  function initMenu() {
    const button = document.querySelector(".menu-button");
    if (!button) return;
    const bar = button.closest(".topbar");
    bar.classList.add("collapsible");
    button.hidden = false;
    button.addEventListener("click", function () {
      const open = bar.classList.toggle("open");
      button.setAttribute("aria-expanded", String(open));
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && bar.classList.contains("open")) {
        bar.classList.remove("open");
        button.setAttribute("aria-expanded", "false");
        button.focus();
      }
    });
  }

  // On phones a list table stacks its cells (app.css): each cell carries its column's
  // name, so "2 / 133 / $0.0001" reads "Requests 2, Tokens 133, Cost $0.0001".
  function labelCells(root) {
    const tables = root.matches && root.matches("table.list") ? [root] : root.querySelectorAll("table.list");
    tables.forEach(function (table) {
      const heads = Array.from(table.querySelectorAll("thead th")).map(function (th) { return th.textContent.trim(); });
      if (!heads.length) return;
      table.querySelectorAll("tbody tr").forEach(function (row) {
        Array.from(row.children).forEach(function (cell, i) {
          if (heads[i] && !cell.dataset.label) cell.dataset.label = heads[i];
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { initForms(document); initMenu(); labelCells(document); });
  document.addEventListener("htmx:load", function (event) { initForms(event.target); labelCells(event.target); });
})();
