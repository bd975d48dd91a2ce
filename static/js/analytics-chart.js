// The Analytics tab's charts (Chart.js, vendored): hit rate of each criterion per source,
// the leaderboard's strengths with their 95 % intervals, and score against response length.
document.addEventListener("DOMContentLoaded", () => {
  const node = document.getElementById("analytics-data");
  if (!node || !window.Chart) return;
  const data = JSON.parse(node.textContent);
  const plain = { animation: false, maintainAspectRatio: true };

  const hit = document.getElementById("hit-chart");
  if (hit && data.hit.labels.length) {
    new window.Chart(hit, {
      type: "bar",
      data: {
        labels: data.hit.labels,
        datasets: data.hit.sources.map((s) => ({ label: s.source, data: s.rates })),
      },
      options: {
        ...plain,
        scales: { y: { min: 0, max: 1, title: { display: true, text: "hit rate" } } },
      },
    });
  }

  const board = document.getElementById("board-chart");
  if (board && data.board.length) {
    new window.Chart(board, {
      type: "bar",
      data: {
        labels: data.board.map((b) => b.source),
        datasets: [
          { label: "95 % interval", data: data.board.map((b) => [b.low, b.high]), barPercentage: 0.3 },
          { label: "strength", type: "line", showLine: false, pointRadius: 5, data: data.board.map((b) => b.theta) },
        ],
      },
      options: { ...plain, indexAxis: "x", scales: { y: { title: { display: true, text: "Bradley–Terry strength (log)" } } } },
    });
  }

  const scatter = document.getElementById("length-chart");
  if (scatter && data.scatter.length) {
    new window.Chart(scatter, {
      type: "scatter",
      data: { datasets: [{ label: "responses", data: data.scatter.map(([x, y]) => ({ x, y })), pointRadius: 2 }] },
      options: {
        ...plain,
        scales: {
          x: { title: { display: true, text: "length (characters)" } },
          y: { title: { display: true, text: "score" } },
        },
      },
    });
  }
});
