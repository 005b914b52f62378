// Metrics page: one small bar chart beside each table, from the JSON the server renders
// next to it (Chart.js, vendored under static/vendor/chartjs).
(function () {
  "use strict";
  function format(kind, value) {
    if (value === null || value === undefined) return "–";
    if (kind === "rate") return (value * 100).toFixed(1) + "%";
    if (kind === "seconds") return value < 120 ? value.toFixed(0) + " s" : (value / 60).toFixed(0) + " min";
    if (kind === "number") return value.toFixed(2);
    return String(value);
  }
  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || !window.Chart) return;
    var chart = JSON.parse(source.textContent);
    if (!chart.labels.length) { canvas.closest("figure").hidden = true; return; }
    canvas.parentElement.style.height = Math.max(90, 26 * chart.labels.length + 40) + "px";
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: chart.labels, datasets: [{ label: chart.label, data: chart.values, backgroundColor: "#2754c5" }] },
      options: {
        indexAxis: "y", responsive: true, maintainAspectRatio: false, animation: false,
        plugins: {
          legend: { display: false },
          title: { display: true, text: chart.label, align: "start", color: "#667085" },
          tooltip: { callbacks: { label: function (item) { return format(chart.kind, item.raw); } } }
        },
        scales: {
          x: {
            beginAtZero: true,
            max: chart.kind === "rate" ? 1 : undefined,
            ticks: { callback: function (value) { return format(chart.kind, value); }, maxTicksLimit: 5 }
          }
        }
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
