// Line charts in SVG over a rolling window of samples taken by the page at each refresh
// (the API gives current values and rates; the history is kept here).

import { h, clear } from './dom.js';

const W = 560;
const H = 150;
const PAD = { l: 56, r: 8, t: 8, b: 20 };

export class Chart {
  // series: [{ key, label, color }]; format: value -> text; windowSec: history kept.
  constructor(title, series, { format = String, windowSec = 600 } = {}) {
    this.series = series;
    this.format = format;
    this.windowSec = windowSec;
    this.samples = [];
    this.svg = h('svg:svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title });
    this.legend = h('table', { class: 'legend' });
    this.el = h('div', { class: 'chart-box' }, h('h3', {}, title), h('div', { class: 'chart-row' }, this.svg, this.legend));
  }

  // Adds the values of one sample (an object by series key) taken now.
  push(values, t = Date.now()) {
    this.samples.push({ t, values });
    const from = t - this.windowSec * 1000;
    while (this.samples.length > 2 && this.samples[0].t < from) this.samples.shift();
    this.draw();
  }

  draw() {
    const svg = clear(this.svg);
    const n = this.samples.length;
    const last = n ? this.samples[n - 1] : null;
    const t1 = last ? last.t : Date.now();
    const t0 = t1 - this.windowSec * 1000;
    let max = 0;
    for (const s of this.samples) for (const se of this.series) max = Math.max(max, s.values[se.key] || 0);
    max = niceMax(max);
    const x = (t) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
    const y = (v) => H - PAD.b - (v / max) * (H - PAD.t - PAD.b);
    for (const f of [0, 0.5, 1]) {
      const yy = y(max * f);
      svg.append(h('svg:line', { x1: PAD.l, x2: W - PAD.r, y1: yy, y2: yy, class: 'grid' }));
      svg.append(h('svg:text', { x: PAD.l - 4, y: yy + 4, 'text-anchor': 'end', class: 'axis' }, this.format(max * f)));
    }
    svg.append(h('svg:text', { x: PAD.l, y: H - 4, class: 'axis' }, `${Math.round(this.windowSec / 60)} min ago`));
    svg.append(h('svg:text', { x: W - PAD.r, y: H - 4, 'text-anchor': 'end', class: 'axis' }, 'now'));
    for (const se of this.series) {
      const pts = this.samples.map((s) => `${x(s.t).toFixed(1)},${y(s.values[se.key] || 0).toFixed(1)}`);
      if (pts.length === 1) pts.push(`${W - PAD.r},${pts[0].split(',')[1]}`);
      if (pts.length) svg.append(h('svg:polyline', { points: pts.join(' '), stroke: se.color, class: 'series' }));
    }
    clear(this.legend);
    for (const se of this.series) {
      this.legend.append(h('tr', {},
        h('td', {}, h('span', { class: 'swatch', dataset: { color: se.color } }, '■')),
        h('th', {}, se.label),
        h('td', { class: 'num', dataset: { series: se.key } }, last ? this.format(last.values[se.key] || 0) : '')));
    }
    // Colours through the CSSOM (no inline style attributes under the CSP).
    for (const sw of this.legend.querySelectorAll('.swatch')) sw.style.color = sw.dataset.color;
  }
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}
