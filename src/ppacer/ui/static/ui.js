// ppacer web UI: the few behaviours htmx attributes do not cover. No inline scripts (CSP).
(function () {
  "use strict";
  // "Close" buttons of side panels empty the panel instead of navigating.
  document.addEventListener("click", function (event) {
    var closer = event.target.closest && event.target.closest("[data-close-panel]");
    if (!closer) return;
    var panel = closer.closest("#panel");
    if (panel) { event.preventDefault(); panel.innerHTML = ""; }
  });
  // Log tails follow new lines when the reader is at the bottom of the page (like tail -f).
  var atBottom = false;
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "tail") {
      atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (atBottom && event.detail.target && event.detail.target.id === "tail") {
      window.scrollTo(0, document.body.scrollHeight);
    }
    atBottom = false;
  });
})();
