// The reports' charts, drawn with ECharts from the figures the page embeds (#report-charts).
// Every label arrives translated; a Pareto bar links to the cases behind it.
(function () {
  "use strict";
  const source = document.getElementById("report-charts");
  if (!source || typeof echarts === "undefined") return;
  const data = JSON.parse(source.textContent);
  const palette = ["#1f5fa8", "#e08a1e", "#2e8b57", "#b03a2e"];

  function draw(id, option) {
    const el = document.getElementById(id);
    if (!el) return null;
    const chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption(Object.assign({ color: palette, animation: false }, option));
    window.addEventListener("resize", () => chart.resize());
    el.dataset.drawn = "true";
    return chart;
  }

  function empty(list) { return !list || list.length === 0; }

  if (data.hours) {
    const h = data.hours;
    draw("chart-hours", {
      title: { text: h.title, left: "center", textStyle: { fontSize: 14 } },
      tooltip: { trigger: "axis" },
      legend: { bottom: 0, data: [h.attempts_label, h.rate_label] },
      grid: { left: 50, right: 50, top: 40, bottom: 50 },
      xAxis: { type: "category", data: h.hours },
      yAxis: [{ type: "value", name: h.attempts_label }, { type: "value", name: h.rate_label, min: 0, max: 100 }],
      series: [
        { name: h.attempts_label, type: "bar", data: h.attempts },
        { name: h.rate_label, type: "line", yAxisIndex: 1, data: h.rates },
      ],
    });
  }
  if (data.channels) {
    const c = data.channels;
    draw("chart-channels", {
      title: { text: c.title, left: "center", textStyle: { fontSize: 14 } },
      tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
      legend: { bottom: 0 },
      series: [{ type: "pie", radius: ["35%", "65%"], data: c.items, label: { formatter: "{b}\n{d}%" } }],
    });
  }
  if (data.pareto) {
    const p = data.pareto;
    const chart = draw("chart-pareto", {
      title: { text: p.title, left: "center", textStyle: { fontSize: 14 } },
      tooltip: { trigger: "axis" },
      legend: { bottom: 0, data: [p.count_label, p.cumulative_label] },
      grid: { left: 50, right: 50, top: 40, bottom: 70 },
      xAxis: { type: "category", data: p.names, axisLabel: { interval: 0, rotate: p.names.length > 5 ? 20 : 0 } },
      yAxis: [{ type: "value", name: p.count_label }, { type: "value", name: p.cumulative_label, min: 0, max: 100 }],
      series: [
        { name: p.count_label, type: "bar", data: p.counts, cursor: "pointer" },
        { name: p.cumulative_label, type: "line", yAxisIndex: 1, data: p.cumulative },
      ],
    });
    if (chart && !empty(p.links)) {
      chart.on("click", (event) => {
        const link = p.links[event.dataIndex];
        if (link) window.location.href = link;
      });
    }
  }
  if (data.levels) {
    const l = data.levels;
    draw("chart-levels", {
      title: { text: l.title, left: "center", textStyle: { fontSize: 14 } },
      tooltip: { trigger: "axis" },
      grid: { left: 50, right: 20, top: 40, bottom: 30 },
      xAxis: { type: "category", data: l.names },
      yAxis: { type: "value", name: l.rate_label, min: 0, max: 100 },
      series: [{ name: l.rate_label, type: "bar", data: l.rates, label: { show: true, position: "top", formatter: "{c}%" } }],
    });
  }
})();
