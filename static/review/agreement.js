// Agreement dashboard charts (Chart.js): alpha with its interval, score distributions, scores by model.
(function () {
  function draw() {
    var node = document.getElementById("agreement-data");
    if (!node || !window.Chart) return;
    var data = JSON.parse(node.textContent), report = data.report, groups = data.groups;
    var zh = (document.documentElement.lang || "").indexOf("zh") === 0;
    var dims = report.dimensions;
    var labels = dims.map(function (d) { return zh && d.label_zh ? d.label_zh : d.label; });
    // Figures, not motion: a chart caught mid-animation shows points short of their values.
    Chart.defaults.animation = false;
    var palette = ["#2f6fed", "#e8590c", "#2b8a3e", "#ae3ec9", "#f59f00", "#1098ad", "#c92a2a"];

    new Chart(document.getElementById("chart-alpha"), {
      data: {
        labels: labels,
        datasets: [
          { type: "bar", label: "95% CI", backgroundColor: "rgba(47,111,237,.25)",
            data: dims.map(function (d) { return d.alpha_ci_low === null ? null : [d.alpha_ci_low, d.alpha_ci_high]; }) },
          // a line without the line, not "scatter": scatter brings its own linear axes, which put the
          // points on another scale than the bars and the ticks
          { type: "line", showLine: false, label: "α", backgroundColor: "#2f6fed", borderColor: "#2f6fed", pointRadius: 6,
            data: dims.map(function (d) { return d.alpha; }) }
        ]
      },
      options: { scales: { y: { min: -1, max: 1 } } }
    });

    var values = [];
    dims.forEach(function (d) { Object.keys(d.distribution).forEach(function (v) { if (values.indexOf(v) < 0) values.push(v); }); });
    values.sort(function (a, b) { return parseFloat(a) - parseFloat(b); });
    new Chart(document.getElementById("chart-distribution"), {
      type: "bar",
      data: {
        labels: values,
        datasets: dims.map(function (d, i) {
          return { label: labels[i], backgroundColor: palette[i % palette.length],
                   data: values.map(function (v) { return d.distribution[v] || 0; }) };
        })
      }
    });

    new Chart(document.getElementById("chart-models"), {
      data: {
        labels: groups.map(function (g) { return g.origin + (g.model ? " · " + g.model : ""); }),
        datasets: [
          { type: "bar", label: "95% CI", backgroundColor: "rgba(232,89,12,.25)",
            data: groups.map(function (g) { return g.ci_low === null ? null : [g.ci_low, g.ci_high]; }) },
          { type: "line", showLine: false, label: "mean", backgroundColor: "#e8590c", borderColor: "#e8590c", pointRadius: 6,
            data: groups.map(function (g) { return g.weighted_score_mean; }) }
        ]
      }
    });

    document.querySelectorAll("table.heatmap td[data-kappa]").forEach(function (td) {
      var k = parseFloat(td.dataset.kappa);
      if (isNaN(k)) return;
      var hue = Math.max(0, Math.min(1, (k + 1) / 2)) * 120;  // red at -1, green at 1
      td.style.background = "hsl(" + hue + ", 70%, 80%)";
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
