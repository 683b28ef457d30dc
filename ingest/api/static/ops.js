// The /ops charts: each panel's data from /ops/data/<panel> (same JSON as the server's tables), drawn
// with uPlot (from npm, served at /ops/static/uplot). The tables below the charts stay: they carry the
// values for screen readers and are all there is without JavaScript. Refreshed every minute (the server
// caches its answers for a few seconds, so reloads do not load InfluxDB).
"use strict";
(function () {
  const main = document.getElementById("ops");
  if (!main || typeof uPlot === "undefined") return;
  const day = main.dataset.day;
  const tz = main.dataset.timezone;
  const num = new Intl.NumberFormat(main.dataset.lang === "de" ? "de-DE" : "en-GB", { maximumFractionDigits: 2 });
  const COLORS = ["#0b5cad", "#c2410c", "#15803d", "#a16207", "#7e22ce", "#0e7490", "#be123c", "#4b5563"];
  const HEIGHT = 220;
  const locale = main.dataset.lang === "de" ? "de-DE" : "en-GB";
  const clock = new Intl.DateTimeFormat(locale, { timeZone: tz, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const clockSeconds = new Intl.DateTimeFormat(locale, { timeZone: tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  const charts = {};
  window.opsCharts = charts; // for the browser tests: each panel's uPlot

  function options(data, width, done) {
    const categories = data.kind === "categories";
    const unit = data.unit ? " " + data.unit : "";
    const series = [{}];
    data.series.forEach(function (one, i) {
      const color = COLORS[i % COLORS.length];
      let paths;
      if (categories) paths = uPlot.paths.bars({ size: [0.7, 60] });
      else if (data.kind === "bars") paths = uPlot.paths.stepped({ align: 1 });
      series.push({
        label: one.label,
        stroke: color,
        fill: categories ? color : data.kind === "bars" && data.series.length === 1 ? color + "55" : undefined,
        width: categories ? 0 : 2,
        paths: paths,
        points: { show: false },
        value: function (u, v) { return v == null ? "–" : num.format(v) + unit; },
      });
    });
    const yAxis = { size: 52, values: function (u, splits) { return splits.map(function (v) { return num.format(v); }); } };
    const opts = {
      width: width,
      height: HEIGHT,
      series: series,
      legend: { show: !categories, live: false },
      padding: [10, 24, 0, 0], // room for the last time label
      cursor: { drag: { x: false, y: false } },
      hooks: { draw: [done] },
      axes: [{}, yAxis],
      scales: {},
    };
    if (categories) {
      const n = data.categories.length;
      opts.scales.x = { time: false, range: [-0.5, n - 0.5] };
      const step = Math.max(1, Math.ceil(n / Math.max(1, Math.floor((width - 60) / 24))));
      opts.axes[0] = {
        splits: function () { return data.x.filter(function (i) { return i % step === 0; }); },
        values: function (u, splits) { return splits.map(function (i) { return (data.categories[i] || "").replace(/^Haus /, ""); }); },
        gap: 4,
        size: 30,
      };
    } else {
      // the day's panels show the whole day; the last hour's fit their data (a fresh ingester has minutes)
      if (!data.live) opts.scales.x = { range: [data.from, data.to] };
      opts.axes[0] = { space: 60, values: function (u, splits) {
        const format = u.scales.x.max - u.scales.x.min < 600 ? clockSeconds : clock;
        return splits.map(function (ts) { return format.format(new Date(ts * 1e3)); });
      } };
    }
    return opts;
  }

  function columns(data) {
    return [data.x].concat(data.series.map(function (one) { return one.values; }));
  }

  function draw(box, data) {
    const key = box.dataset.panel;
    if (!data.series.length) return;
    if (charts[key]) {
      charts[key].setData(columns(data));
      return;
    }
    const done = function () { box.dataset.drawn = "1"; };
    charts[key] = new uPlot(options(data, box.clientWidth || 360, done), columns(data), box);
  }

  function load(box) {
    const url = "/ops/data/" + encodeURIComponent(box.dataset.panel) + "?day=" + encodeURIComponent(day);
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.json();
      })
      .then(function (data) { draw(box, data); })
      .catch(function () { box.dataset.failed = "1"; }); // the table still shows the values
  }

  const boxes = Array.prototype.slice.call(document.querySelectorAll(".chart[data-panel]"));
  boxes.forEach(load);
  window.setInterval(function () { boxes.forEach(load); }, 60000);
  window.addEventListener("resize", function () {
    boxes.forEach(function (box) {
      const chart = charts[box.dataset.panel];
      if (chart) chart.setSize({ width: box.clientWidth, height: HEIGHT });
    });
  });
})();
