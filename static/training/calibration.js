// Reliability diagrams (Chart.js): per confidence bin, the share acceptable against the mean confidence,
// before and after calibration (a point per bin, sized by its outcomes); the diagonal is perfect calibration.
(function () {
  function points(bins) {
    return bins.map(function (b) { return { x: b.confidence, y: b.accuracy, n: b.n }; });
  }
  // One point per bin, no line between: bins are not a curve, and a bin's area grows with its outcomes.
  function bins(label, data, colour) {
    var most = Math.max.apply(null, data.map(function (b) { return b.n; }).concat([1]));
    return { type: "line", showLine: false, label: label, data: points(data), borderColor: colour,
      backgroundColor: colour,
      pointRadius: data.map(function (b) { return 3 + 6 * Math.sqrt(b.n / most); }) };
  }
  function draw() {
    var node = document.getElementById("calibration-data");
    if (!node || !window.Chart) return;
    Chart.defaults.animation = false;
    JSON.parse(node.textContent).forEach(function (version, i) {
      var canvas = document.getElementById("reliability-" + i);
      if (!canvas) return;
      var datasets = [
        { type: "line", label: "perfect", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], borderColor: "#999",
          borderDash: [4, 4], pointRadius: 0 },
        bins("raw confidence", version.before, "#e8590c")
      ];
      if (version.after.length) datasets.push(bins("calibrated", version.after, "#2f6fed"));
      new Chart(canvas, {
        data: { datasets: datasets },
        options: {
          scales: {
            x: { type: "linear", min: 0, max: 1, title: { display: true, text: "confidence" } },
            y: { min: 0, max: 1, title: { display: true, text: "share acceptable" } }
          },
          plugins: { tooltip: { callbacks: { afterLabel: function (c) {
            return c.raw.n ? "n = " + c.raw.n : ""; } } } }
        }
      });
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
