// The charts of the portal (portal.js) and of the public quarter page (quarter.js), drawn with uPlot (from
// npm, served at /ops/static/uplot): the page carries its data as JSON in a <script> (charts, lang); each
// chart goes into its box (.chart[data-chart=key]), which gets data-drawn once uPlot has painted it. The
// page's own choices come in `look`: barSize (uPlot's bars size), points(series), legend(chart, v) and
// axis(chart, v) (the number shown for a value), splits(chart, width) (the x labels' indices),
// yRange(chart, min, max), padding, skipEmpty (no chart without labels).
"use strict";
window.drawCharts = function (sourceId, look) {
  const charts = {};
  const source = document.getElementById(sourceId);
  if (!source || typeof uPlot === "undefined") return charts;
  const spec = JSON.parse(source.textContent);
  const locale = spec.lang === "de" ? "de-DE" : "en-GB";
  const num = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 });
  const HEIGHT = 220;

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
        paths: one.line ? uPlot.paths.linear() : uPlot.paths.bars({ size: look.barSize(bars) }),
        points: look.points(one),
        value: function (u, v) { return v == null ? "–" : num.format(look.legend(chart, v)) + " " + chart.unit; },
      });
    });
    return {
      width: width,
      height: HEIGHT,
      series: series,
      legend: { show: true, live: false },
      padding: look.padding,
      cursor: { drag: { x: false, y: false } },
      hooks: { draw: [done] },
      scales: {
        x: { time: false, range: [-0.5, Math.max(n, 1) - 0.5] },
        y: { range: function (u, min, max) { return look.yRange(chart, min, max); } },
      },
      axes: [
        {
          splits: function () { return look.splits(chart, width); },
          values: function (u, splits) { return splits.map(function (i) { return chart.labels[i] || ""; }); },
          gap: 4,
          size: 30,
        },
        { size: 50, values: function (u, splits) { return splits.map(function (v) { return num.format(look.axis(chart, v)); }); } },
      ],
    };
  }

  spec.charts.forEach(function (chart) {
    const box = document.querySelector('.chart[data-chart="' + chart.key + '"]');
    if (!box || (look.skipEmpty && !chart.labels.length)) return;
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
  return charts;
};
