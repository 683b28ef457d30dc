// The public quarter page's charts: the page carries its figures (script#quarter-charts, the same JSON as
// /quarter/data); each chart is drawn with uPlot (from npm, served at /ops/static/uplot) into its box.
// The texts and tables stay: they hold every value for screen readers and are all there is without
// JavaScript.
"use strict";
(function () {
  const source = document.getElementById("quarter-charts");
  if (!source || typeof uPlot === "undefined") return;
  const spec = JSON.parse(source.textContent);
  const locale = spec.lang === "de" ? "de-DE" : "en-GB";
  const num = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 });
  const HEIGHT = 220;
  const charts = {};
  window.quarterCharts = charts; // for the browser tests

  function options(chart, width, done) {
    const n = chart.labels.length;
    const bars = chart.series.filter(function (s) { return !s.line; }).length;
    const series = [{ value: function (u, i) { return i == null ? "" : chart.labels[i] || ""; } }];
    const size = chart.key === "power" ? Math.abs : function (v) { return v; };
    chart.series.forEach(function (one) {
      series.push({
        label: one.label,
        stroke: one.color,
        fill: one.line ? undefined : one.color,
        width: one.line ? 2 : 0,
        fillTo: 0,
        paths: one.line ? uPlot.paths.linear() : uPlot.paths.bars({ size: [bars > 1 ? 0.9 : 0.7, 20] }),
        points: { show: false },
        value: function (u, v) { return v == null ? "–" : num.format(size(v)) + " " + chart.unit; },
      });
    });
    // an hour's labels where they fit: 4 quarter hours or 6 ten-minute steps per hour
    const perHour = chart.key === "street" ? 6 : 4;
    const hours = Math.max(1, Math.ceil((n / perHour) / Math.max(1, Math.floor((width - 60) / 44))));
    const step = perHour * hours;
    return {
      width: width,
      height: HEIGHT,
      series: series,
      legend: { show: true, live: false },
      padding: [10, 12, 0, 0],
      cursor: { drag: { x: false, y: false } },
      hooks: { draw: [done] },
      scales: {
        x: { time: false, range: [-0.5, Math.max(n, 1) - 0.5] },
        y: {
          range: function (u, min, max) {
            if (chart.key === "street") {
              const pad = Math.max(1, (max - min) * 0.15);
              return [Math.floor(min - pad), Math.ceil(max + pad)];
            }
            return [Math.min(0, min * 1.08), Math.max(0, max * 1.08) || 1]; // bars stand on zero
          },
        },
      },
      axes: [
        {
          splits: function () {
            return chart.x.filter(function (i) { return chart.labels[i] && chart.labels[i].slice(3) === "00" && (parseInt(chart.labels[i], 10) % (step / perHour) === 0); });
          },
          values: function (u, splits) { return splits.map(function (i) { return chart.labels[i] || ""; }); },
          gap: 4,
          size: 30,
        },
        // amounts, not signs, on the power chart: export is below the axis, its size is what the axis
        // says; temperatures keep their sign (-2.5 °C is not 2.5 °C)
        { size: 50, values: function (u, splits) { return splits.map(function (v) { return num.format(size(v)); }); } },
      ],
    };
  }

  spec.charts.forEach(function (chart) {
    const box = document.querySelector('.chart[data-chart="' + chart.key + '"]');
    if (!box || !chart.labels.length) return;
    const done = function () { box.dataset.drawn = "1"; };
    const data = [chart.x].concat(chart.series.map(function (s) { return s.values; }));
    charts[chart.key] = new uPlot(options(chart, box.clientWidth || 360, done), data, box);
  });
  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (key) {
      const box = document.querySelector('.chart[data-chart="' + key + '"]');
      if (box) charts[key].setSize({ width: box.clientWidth, height: HEIGHT });
    });
  });
})();
