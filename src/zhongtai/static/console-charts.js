// Console charts: any element with data-chart draws from the JSON in the element named by data-source
// (no inline script, as the Content-Security-Policy requires). ECharts is vendored under /static/vendor.
(function () {
  "use strict";

  var palette = ["#2563eb", "#16a34a", "#f59e0b", "#f97316", "#dc2626", "#7c3aed"];

  function funnel(element, data) {
    var chart = window.echarts.init(element, null, { renderer: "svg" });
    chart.setOption({
      color: palette,
      tooltip: { trigger: "item", formatter: "{b}: {c}" },
      series: [{
        type: "funnel",
        sort: "none",
        left: "8%", width: "84%", top: 8, bottom: 8,
        minSize: "8%",
        label: { show: true, position: "inside", formatter: "{b} {c}" },
        data: data,
      }],
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }

  // A line per series over days: {days: ["12-01", …], series: [{name, data: [n, …]}, …]}.
  function trend(element, data) {
    var chart = window.echarts.init(element, null, { renderer: "svg" });
    chart.setOption({
      color: palette,
      tooltip: { trigger: "axis" },
      legend: { top: 0, data: data.series.map(function (s) { return s.name; }) },
      grid: { left: 8, right: 12, top: 32, bottom: 4, containLabel: true },
      xAxis: { type: "category", data: data.days, boundaryGap: false, axisLabel: { hideOverlap: true } },
      yAxis: { type: "value", minInterval: 1, splitLine: { lineStyle: { color: "#eef1f6" } } },
      series: data.series.map(function (s) {
        // Monotone smoothing: a curve never dips below zero or overshoots a day between two others.
        return { name: s.name, type: "line", smooth: 0.3, smoothMonotone: "x", showSymbol: false, areaStyle: { opacity: 0.08 }, data: s.data };
      }),
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }

  var kinds = { funnel: funnel, trend: trend };

  function draw() {
    if (!window.echarts) return;
    document.querySelectorAll("[data-chart]").forEach(function (element) {
      var source = document.getElementById(element.getAttribute("data-source"));
      var kind = kinds[element.getAttribute("data-chart")];
      if (source && kind) kind(element, JSON.parse(source.textContent));
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
