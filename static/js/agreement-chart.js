// Judge-vs-reviewer accuracy and Cohen's κ across rubric versions and template versions on
// the agreement page (Chart.js, vendored). A null figure (undefined) is a gap, not a zero;
// the tooltip names the number of reviews behind each point.
document.addEventListener("DOMContentLoaded", () => {
  const source = document.getElementById("agreement-chart-data");
  if (!source || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  const palette = ["#2f5bd3", "#18794e", "#b42318", "#9a6700", "#7a3fc1", "#0e7490"];

  const withN = (counts) => ({
    callbacks: {
      afterLabel: (ctx) => `n = ${counts[ctx.datasetIndex][ctx.dataIndex]} reviews`,
      label: (ctx) => `${ctx.dataset.label}: ${ctx.parsed.y === null ? "undefined" : ctx.parsed.y.toFixed(3)}`,
    },
  });
  const scales = (title) => ({
    x: { title: { display: true, text: title } },
    y: { suggestedMin: 0, suggestedMax: 1, title: { display: true, text: "accuracy / κ" } },
  });

  const versions = document.getElementById("trend-versions");
  if (versions && data.versions.labels.length) {
    const datasets = [];
    const counts = [];
    data.versions.series.forEach((s, i) => {
      const color = palette[i % palette.length];
      datasets.push({ label: `${s.rubric} · accuracy`, data: s.accuracy, borderColor: color, backgroundColor: color, spanGaps: false });
      datasets.push({ label: `${s.rubric} · κ`, data: s.kappa, borderColor: color, backgroundColor: color, borderDash: [6, 4], pointStyle: "rectRot", pointRadius: 4, spanGaps: false });
      counts.push(s.n, s.n);
    });
    new window.Chart(versions, {
      type: "line",
      data: { labels: data.versions.labels, datasets },
      options: {
        animation: false,
        scales: scales("rubric version"),
        plugins: { tooltip: withN(counts), legend: { labels: { usePointStyle: true } } },
      },
    });
  }

  const templates = document.getElementById("trend-templates");
  if (templates && data.templates.labels.length) {
    const t = data.templates;
    new window.Chart(templates, {
      type: "bar",
      data: {
        labels: t.labels,
        datasets: [
          { label: "accuracy", data: t.accuracy, backgroundColor: palette[0] },
          { label: "κ", data: t.kappa, backgroundColor: palette[1] },
        ],
      },
      options: { animation: false, scales: scales("template version"), plugins: { tooltip: withN([t.n, t.n]) } },
    });
  }
});
