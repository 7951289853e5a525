// Per-person quality charts (Chart.js): tasks done per person by kind, and the share of their work
// rejected at the next tier against how much they did. Labels come from the page's columns.
(function () {
  var TOP = 25;  // people drawn in the bar chart, most tasks first; the table has everyone

  function draw() {
    var node = document.getElementById("quality-data");
    if (!node || !window.Chart) return;
    var data = JSON.parse(node.textContent);
    var label = {};
    data.columns.forEach(function (c) { label[c.key] = c.label; });
    // Figures, not motion: a chart caught mid-animation shows bars short of their values.
    Chart.defaults.animation = false;

    var busiest = data.people.filter(function (p) { return p.tasks; })
      .sort(function (a, b) { return b.tasks - a.tasks || (a.username < b.username ? -1 : 1); })
      .slice(0, TOP);
    var kinds = [["annotated", "#2f6fed"], ["reviewed", "#2b8a3e"], ["rated", "#e8590c"], ["compared", "#ae3ec9"]];
    new Chart(document.getElementById("chart-tasks"), {
      type: "bar",
      data: {
        labels: busiest.map(function (p) { return p.username; }),
        datasets: kinds.map(function (kind) {
          return { label: label[kind[0]], backgroundColor: kind[1],
                   data: busiest.map(function (p) { return p[kind[0]] || 0; }) };
        })
      },
      options: { indexAxis: "y", scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
                                           y: { stacked: true } } }
    });

    function points(key) {
      return data.people.filter(function (p) { return p[key] !== null && p[key] !== undefined; })
        .map(function (p) { return { x: p.tasks || 0, y: p[key], person: p.username }; });
    }
    new Chart(document.getElementById("chart-rejected"), {
      type: "scatter",
      data: {
        datasets: [
          { label: label.answers_rejected, backgroundColor: "#2f6fed", pointRadius: 5, data: points("answers_rejected") },
          { label: label.approvals_overturned, backgroundColor: "#c92a2a", pointRadius: 5, pointStyle: "triangle",
            data: points("approvals_overturned") }
        ]
      },
      options: {
        scales: { x: { beginAtZero: true, title: { display: true, text: label.tasks } },
                  y: { min: 0, max: 1, ticks: { callback: function (v) { return Math.round(v * 100) + " %"; } } } },
        plugins: { tooltip: { callbacks: { label: function (ctx) {
          return ctx.raw.person + ": " + Math.round(ctx.raw.y * 100) + " % (" + ctx.raw.x + ")";
        } } } }
      }
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
