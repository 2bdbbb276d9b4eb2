// finsync console: the little the pages need beyond htmx. No inline scripts (CSP).
(function () {
  "use strict";

  // Bulk selection on the exception queue: "select all" and the count on the action bar.
  function refreshSelection(root) {
    var boxes = root.querySelectorAll("input[data-select-row]");
    var chosen = root.querySelectorAll("input[data-select-row]:checked").length;
    root.querySelectorAll("[data-selected-count]").forEach(function (el) {
      el.textContent = String(chosen);
    });
    root.querySelectorAll("[data-needs-selection]").forEach(function (el) {
      el.disabled = chosen === 0;
    });
    var all = root.querySelector("input[data-select-all]");
    if (all) {
      all.checked = boxes.length > 0 && chosen === boxes.length;
      all.indeterminate = chosen > 0 && chosen < boxes.length;
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLInputElement)) return;
    if (target.hasAttribute("data-select-all")) {
      document.querySelectorAll("input[data-select-row]").forEach(function (box) {
        box.checked = target.checked;
      });
    }
    if (target.hasAttribute("data-select-all") || target.hasAttribute("data-select-row")) {
      refreshSelection(document);
    }
  });

  // Copy buttons (trace ids, event ids): <button data-copy="text">.
  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
    if (!button || !navigator.clipboard) return;
    navigator.clipboard.writeText(button.getAttribute("data-copy") || "").then(function () {
      button.classList.add("copied");
      setTimeout(function () { button.classList.remove("copied"); }, 1200);
    });
  });

  document.addEventListener("DOMContentLoaded", function () { refreshSelection(document); });
  document.addEventListener("htmx:after:swap", function () { refreshSelection(document); });
})();
