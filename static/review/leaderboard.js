// Leaderboard charts (Chart.js): each model's Bradley–Terry rating, and its win rate with the 95% interval.
(function () {
  function draw() {
    var node = document.getElementById("leaderboard-data");
    if (!node || !window.Chart) return;
    var models = JSON.parse(node.textContent).board.models;
    var names = models.map(function (m) { return m.model; });
    // Figures, not motion: a chart caught mid-animation shows bars short of their values.
    Chart.defaults.animation = false;

    new Chart(document.getElementById("chart-elo"), {
      type: "bar",
      data: { labels: names, datasets: [{ label: "Elo", backgroundColor: "#2f6fed",
        data: models.map(function (m) { return m.elo; }) }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } } }
    });

    new Chart(document.getElementById("chart-winrate"), {
      data: {
        labels: names,
        datasets: [
          { type: "bar", label: "95% CI", backgroundColor: "rgba(232,89,12,.25)",
            data: models.map(function (m) { return [m.win_rate_ci_low, m.win_rate_ci_high]; }) },
          // a line without the line, not "scatter", so the points share the bars' category axis
          { type: "line", showLine: false, label: "win rate", backgroundColor: "#e8590c", borderColor: "#e8590c",
            pointRadius: 6, data: models.map(function (m) { return m.win_rate; }) }
        ]
      },
      options: { scales: { y: { min: 0, max: 1 } } }
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
