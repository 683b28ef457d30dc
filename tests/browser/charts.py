"""What the pages' uPlot charts hold and paint, read in the browser (``page.evaluate``)."""

from __future__ import annotations

_PAINTED = """() => Object.entries(window.CHARTS || {}).map(([key, u]) => {
  const canvas = u.root.querySelector("canvas");
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const painted = u.series.slice(1).map((s) => {
    const color = s.stroke(u, 1);
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
    let n = 0;
    for (let p = 0; p < pixels.length; p += 4) {
      if (Math.abs(pixels[p] - r) + Math.abs(pixels[p + 1] - g) + Math.abs(pixels[p + 2] - b) < 30) n++;
    }
    return n;
  });
  return { key, FIELDS, painted };
})"""


def painted_charts(charts: str, fields: str) -> str:
    """A script returning, per chart in ``window[charts]``, its key, ``fields`` (JS object members over the
    chart ``u``) and per series the canvas pixels in its stroke colour (a series drawn, not just declared)."""
    return _PAINTED.replace("CHARTS", charts, 1).replace("FIELDS", fields, 1)
