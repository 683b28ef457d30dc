// The public quarter page's charts (script#quarter-charts, the same JSON as /quarter/data), drawn by
// charts.js. The texts and tables stay: they hold every value for screen readers and are all there is
// without JavaScript.
"use strict";
(function () {
  if (typeof window.drawCharts !== "function") return;
  // amounts, not signs, on the power chart: export is below the axis, its size is what the axis says;
  // temperatures keep their sign (-2.5 °C is not 2.5 °C)
  function size(chart, v) { return chart.key === "power" ? Math.abs(v) : v; }
  window.quarterCharts = window.drawCharts("quarter-charts", { // for the browser tests
    barSize: function (bars) { return [bars > 1 ? 0.9 : 0.7, 20]; },
    points: function () { return { show: false }; },
    legend: size,
    axis: size,
    // an hour's labels where they fit: 4 quarter hours or 6 ten-minute steps per hour
    splits: function (chart, width) {
      const perHour = chart.key === "street" ? 6 : 4;
      const hours = Math.max(1, Math.ceil((chart.labels.length / perHour) / Math.max(1, Math.floor((width - 60) / 44))));
      return chart.x.filter(function (i) {
        return chart.labels[i] && chart.labels[i].slice(3) === "00" && parseInt(chart.labels[i], 10) % hours === 0;
      });
    },
    yRange: function (chart, min, max) {
      if (chart.key === "street") {
        const pad = Math.max(1, (max - min) * 0.15);
        return [Math.floor(min - pad), Math.ceil(max + pad)];
      }
      return [Math.min(0, min * 1.08), Math.max(0, max * 1.08) || 1]; // bars stand on zero
    },
    padding: [10, 12, 0, 0],
    skipEmpty: true,
  });
})();
