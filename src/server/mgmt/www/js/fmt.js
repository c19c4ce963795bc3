// Numbers as RabbitMQ's UI shows them: counts with separators, rates with "/s",
// bytes in binary units, durations, times.

export function num(n) {
  if (n === undefined || n === null || n === '') return '';
  if (typeof n !== 'number') return String(n);
  const digits = Number.isInteger(n) || Math.abs(n) >= 10 ? 0 : 1;
  return n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

export function rate(r) {
  if (r === undefined || r === null) return '';
  const v = Math.abs(r) >= 100 ? r.toFixed(0) : r.toFixed(1);
  return `${Number(v).toLocaleString('en-US', { maximumFractionDigits: 1 })}/s`;
}

// `obj.message_stats.publish_details.rate` style lookups, tolerant of absence.
export function at(obj, dotted) {
  return dotted.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

export function rateOf(obj, stat) {
  const r = at(obj, `message_stats.${stat}_details.rate`);
  return r === undefined ? '' : rate(r);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function bytes(n) {
  if (n === undefined || n === null) return '';
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${UNITS[i]}`;
}

export function bytesRate(r) {
  return r === undefined || r === null ? '' : `${bytes(Math.round(r))}/s`;
}

export function duration(ms) {
  if (ms === undefined || ms === null) return '';
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

export function time(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function yesno(b) { return b ? 'yes' : 'no'; }

// An arguments / definition object, one "key: value" per entry.
export function args(o) {
  if (!o || typeof o !== 'object') return '';
  return Object.entries(o).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
}

// Queue and exchange features as RabbitMQ's short badges: D (durable), AD, Excl, I,
// Args, plus the policy name.
export function features(o) {
  const f = [];
  if (o.durable) f.push('D');
  if (o.auto_delete) f.push('AD');
  if (o.exclusive) f.push('Excl');
  if (o.internal) f.push('I');
  if (o.arguments && Object.keys(o.arguments).length) f.push('Args');
  return f.join(' ');
}
