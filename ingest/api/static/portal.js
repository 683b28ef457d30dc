// The portal's charts: the page carries its data (script#portal-charts, JSON); each chart is drawn with
// uPlot (from npm, served at /ops/static/uplot) into its box. The tables below stay: they hold every value
// for screen readers and are all there is without JavaScript.
"use strict";
(function () {
  const source = document.getElementById("portal-charts");
  if (!source || typeof uPlot === "undefined") return;
  const spec = JSON.parse(source.textContent);
  const locale = spec.lang === "de" ? "de-DE" : "en-GB";
  const num = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 });
  const HEIGHT = 220;
  const charts = {};
  window.portalCharts = charts; // for the browser tests

  function options(chart, width, done) {
    const n = chart.labels.length;
    const bars = chart.series.filter(function (s) { return !s.line; }).length;
    const series = [{ value: function (u, i) { return i == null ? "" : chart.labels[i] || ""; } }];
    chart.series.forEach(function (one) {
      series.push({
        label: one.label,
        stroke: one.color,
        fill: one.line ? undefined : one.color,
        width: one.line ? 2 : 0,
        fillTo: 0,
        paths: one.line ? uPlot.paths.linear() : uPlot.paths.bars({ size: [bars > 1 ? 0.8 : 0.7, 40] }),
        points: one.line ? { show: true, size: 6, fill: one.color } : { show: false },
        value: function (u, v) { return v == null ? "–" : num.format(Math.abs(v)) + " " + chart.unit; },
      });
    });
    const step = Math.max(1, Math.ceil(n / Math.max(1, Math.floor((width - 60) / 34))));
    return {
      width: width,
      height: HEIGHT,
      series: series,
      legend: { show: true, live: false },
      padding: [10, 8, 0, 0],
      cursor: { drag: { x: false, y: false } },
      hooks: { draw: [done] },
      scales: {
        x: { time: false, range: [-0.5, n - 0.5] },
        // bars stand on zero: the range always holds it (export below, the rest above)
        y: { range: function (u, min, max) { return [Math.min(0, min * 1.08), Math.max(0, max * 1.08) || 1]; } },
      },
      axes: [
        {
          splits: function () { return chart.x.filter(function (i) { return i % step === 0; }); },
          values: function (u, splits) { return splits.map(function (i) { return chart.labels[i] || ""; }); },
          gap: 4,
          size: 30,
        },
        { size: 50, values: function (u, splits) { return splits.map(function (v) { return num.format(v); }); } },
      ],
    };
  }

  spec.charts.forEach(function (chart) {
    const box = document.querySelector('.chart[data-chart="' + chart.key + '"]');
    if (!box) return;
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
