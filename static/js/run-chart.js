// Score distribution by source on a run page (Chart.js, vendored).
document.addEventListener("DOMContentLoaded", () => {
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const canvas = document.getElementById("score-chart");
  if (!data || !canvas || !window.Chart) return;
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: data.sources.map((s) => ({ label: s.source, data: s.histogram })),
    },
    options: {
      animation: false,
      scales: { x: { title: { display: true, text: "score" } }, y: { title: { display: true, text: "responses" }, beginAtZero: true, ticks: { precision: 0 } } },
    },
  });
});
