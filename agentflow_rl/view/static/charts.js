/* Small SVG charts drawn here, so the page needs no plotting library: lines for learning
 * curves, bars for accuracy. Labels are SVG text nodes, set as text. */
"use strict";
window.AF = window.AF || {};

(function () {
  const { s } = AF;
  const PALETTE = ["#3b6fb6", "#d9822b", "#3a9a5b", "#b54a4a", "#7a5cb8", "#8c6d3f", "#c45a9b", "#5f6b73"];
  AF.colour = (i) => PALETTE[i % PALETTE.length];

  function ticks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / count;
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((v) => v >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  function label(v) {
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
    return String(+v.toPrecision(4));
  }

  /* series: [{name, points: [[x, y], ...]}]; options: {title, width, height, yMin, yMax, xLabel} */
  AF.lineChart = function (series, options = {}) {
    const width = options.width || 420, height = options.height || 220;
    const pad = { l: 52, r: 12, t: 26, b: 34 };
    const all = series.flatMap((one) => one.points).filter((p) => p[1] !== null && Number.isFinite(p[1]));
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    let x0 = Math.min(...xs), x1 = Math.max(...xs);
    let y0 = options.yMin ?? Math.min(...ys), y1 = options.yMax ?? Math.max(...ys);
    if (!all.length) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
    const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
    const Y = (y) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
    const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
    svg.append(s("text", { x: pad.l, y: 16, class: "chart-title" }, options.title || ""));
    for (const t of ticks(y0, y1, 4)) {
      svg.append(s("line", { x1: pad.l, x2: width - pad.r, y1: Y(t), y2: Y(t), class: "grid" }));
      svg.append(s("text", { x: pad.l - 6, y: Y(t) + 4, class: "tick", "text-anchor": "end" }, label(t)));
    }
    for (const t of ticks(x0, x1, 5)) {
      svg.append(s("text", { x: X(t), y: height - pad.b + 16, class: "tick", "text-anchor": "middle" }, label(t)));
    }
    svg.append(s("text", { x: width - pad.r, y: height - 4, class: "tick", "text-anchor": "end" }, options.xLabel || "step"));
    series.forEach((one, i) => {
      const points = one.points.filter((p) => p[1] !== null && Number.isFinite(p[1]));
      if (!points.length) return;
      const colour = one.colour || AF.colour(i);
      const d = points.map((p, k) => (k ? "L" : "M") + X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1)).join("");
      svg.append(s("path", { d, class: "series", stroke: colour }));
      if (points.length <= 60) {
        for (const p of points) {
          svg.append(s("circle", { cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: colour },
            s("title", {}, `${one.name} @ ${p[0]}: ${label(p[1])}`)));
        }
      }
    });
    if (series.length > 1) {
      series.forEach((one, i) => {
        const y = pad.t + 4 + 14 * i;
        svg.append(s("rect", { x: width - pad.r - 120, y: y - 8, width: 10, height: 10, fill: one.colour || AF.colour(i) }));
        svg.append(s("text", { x: width - pad.r - 106, y: y + 1, class: "tick" }, one.name));
      });
    }
    return svg;
  };

  /* groups: [{label, values: [number|null per series]}]; names: one per series. Values are 0..1. */
  AF.barChart = function (groups, names, options = {}) {
    const per = Math.max(1, names.length);
    const width = Math.max(options.width || 360, 60 + groups.length * (per * 22 + 18));
    const height = options.height || 220;
    const pad = { l: 40, r: 10, t: 26, b: 46 };
    const Y = (v) => height - pad.b - v * (height - pad.t - pad.b);
    const slot = (width - pad.l - pad.r) / Math.max(1, groups.length);
    const bar = Math.min(28, (slot - 12) / per);
    const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
    svg.append(s("text", { x: pad.l, y: 16, class: "chart-title" }, options.title || "accuracy (%)"));
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      svg.append(s("line", { x1: pad.l, x2: width - pad.r, y1: Y(t), y2: Y(t), class: "grid" }));
      svg.append(s("text", { x: pad.l - 6, y: Y(t) + 4, class: "tick", "text-anchor": "end" }, String(100 * t)));
    }
    groups.forEach((group, g) => {
      const left = pad.l + g * slot + (slot - bar * per) / 2;
      group.values.forEach((v, k) => {
        if (v === null || v === undefined) return;
        const x = left + k * bar;
        svg.append(s("rect", { x, y: Y(v), width: bar - 2, height: Y(0) - Y(v), fill: AF.colour(k), class: "bar" },
          s("title", {}, `${names[k] || ""} ${group.label}: ${(100 * v).toFixed(1)}%`)));
        svg.append(s("text", { x: x + (bar - 2) / 2, y: Y(v) - 3, class: "tick", "text-anchor": "middle" }, (100 * v).toFixed(1)));
      });
      svg.append(s("text", { x: pad.l + g * slot + slot / 2, y: height - pad.b + 16, class: "tick", "text-anchor": "middle" }, group.label));
    });
    if (names.length > 1) {
      names.forEach((name, k) => {
        const x = pad.l + k * 150;
        svg.append(s("rect", { x, y: height - 16, width: 10, height: 10, fill: AF.colour(k) }));
        svg.append(s("text", { x: x + 14, y: height - 7, class: "tick" }, name));
      });
    }
    return svg;
  };
})();
