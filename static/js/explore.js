// /explore/: the readout under a plot names the run and its values as a point or line is
// hovered or focused; a click (the point is a link) opens the run. The plot itself is the
// server's SVG, so the page reads the same without this script.
(function () {
  "use strict";
  function readoutOf(el) {
    var fig = el.closest("[data-explore]");
    return fig ? fig.querySelector(".xp-readout") : null;
  }
  function show(event) {
    var mark = event.target.closest && event.target.closest(".xp-point, .xp-line");
    if (!mark) return;
    var readout = readoutOf(mark);
    if (!readout) return;
    var fig = mark.closest("[data-explore]");
    fig.querySelectorAll(".is-hovered").forEach(function (m) { m.classList.remove("is-hovered"); });
    mark.classList.add("is-hovered");
    readout.textContent = mark.getAttribute("data-label");
    readout.classList.remove("muted");
  }
  document.addEventListener("pointerover", show);
  document.addEventListener("focusin", show);
})();
