// ppacer web UI: the few behaviours htmx attributes do not cover. No inline scripts (CSP).
// Every page works without it; it only adds comfort.
(function () {
  "use strict";
  // "Close" buttons of side panels empty the panel instead of navigating.
  document.addEventListener("click", function (event) {
    var closer = event.target.closest && event.target.closest("[data-close-panel]");
    if (!closer) return;
    var panel = closer.closest("#panel");
    if (panel) { event.preventDefault(); panel.innerHTML = ""; }
  });
  // Filter forms marked data-autosubmit apply a changed select at once (text still needs Enter).
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.tagName !== "SELECT") return;
    var form = target.closest("form[data-autosubmit]");
    if (form) form.requestSubmit ? form.requestSubmit() : form.submit();
  });
  // Log tails follow new lines when the reader is at the bottom of the page (like tail -f).
  var atBottom = false;
  // The grid keeps its horizontal scroll when its live region is refreshed.
  var gridScroll = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "tail") {
      atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    }
    var grid = document.querySelector(".grid-wrap");
    gridScroll = grid ? [grid.scrollLeft, grid.scrollTop, grid.scrollWidth - grid.clientWidth] : null;
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (atBottom && event.detail.target && event.detail.target.id === "tail") {
      window.scrollTo(0, document.body.scrollHeight);
    }
    atBottom = false;
    var grid = document.querySelector(".grid-wrap");
    if (grid && gridScroll) {
      // At the right end (the newest runs) it stays there; elsewhere where it was.
      var atEnd = gridScroll[0] >= gridScroll[2] - 4;
      grid.scrollLeft = atEnd ? grid.scrollWidth : gridScroll[0];
      grid.scrollTop = gridScroll[1];
    }
    refreshRelative();
  });
  // The grid opens on its newest runs (on the right).
  function showNewest() {
    var grid = document.querySelector(".grid-wrap");
    if (grid) grid.scrollLeft = grid.scrollWidth;
  }
  // "3 min ago" beside times, kept true while the page stays open (the server words it alike).
  function relative(seconds) {
    var ahead = seconds < 0, s = Math.abs(seconds), text;
    if (s < 10) return "just now";
    if (s < 60) text = Math.floor(s) + " s";
    else if (s < 3600) text = Math.floor(s / 60) + " min";
    else if (s < 86400) text = Math.floor(s / 3600) + " h";
    else { var d = Math.floor(s / 86400); text = d + (d === 1 ? " day" : " days"); }
    return ahead ? "in " + text : text + " ago";
  }
  function refreshRelative() {
    var now = Date.now();
    document.querySelectorAll(".rel[data-ts]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("data-ts"));
      if (!isNaN(at)) el.textContent = relative((now - at) / 1000);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    showNewest();
    refreshRelative();
    setInterval(refreshRelative, 30000);
  });
})();
