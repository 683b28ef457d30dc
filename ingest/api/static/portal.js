// The portal's charts (script#portal-charts), drawn by charts.js. The tables below stay: they hold every
// value for screen readers and are all there is without JavaScript.
"use strict";
(function () {
  if (typeof window.drawCharts !== "function") return;
  // bars stand on zero: the range always holds it (export below, the rest above)
  function zeroBased(chart, min, max) { return [Math.min(0, min * 1.08), Math.max(0, max * 1.08) || 1]; }
  window.portalCharts = window.drawCharts("portal-charts", { // for the browser tests
    barSize: function (bars) { return [bars > 1 ? 0.8 : 0.7, 40]; },
    points: function (one) { return one.line ? { show: true, size: 6, fill: one.color } : { show: false }; },
    legend: function (chart, v) { return Math.abs(v); },
    axis: function (chart, v) { return v; },
    splits: function (chart, width) {
      const step = Math.max(1, Math.ceil(chart.labels.length / Math.max(1, Math.floor((width - 60) / 34))));
      return chart.x.filter(function (i) { return i % step === 0; });
    },
    yRange: zeroBased,
    padding: [10, 8, 0, 0],
    skipEmpty: false,
  });
})();
