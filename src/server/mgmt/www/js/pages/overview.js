// Overview: totals, live charts of queued messages and message rates, the node (with its
// alarms), churn, listeners, and definitions export and import.

import { h, section, facts, setText } from '../dom.js';
import { get, post, path } from '../api.js';
import { num, rate, bytes, duration, at } from '../fmt.js';
import { Chart } from '../chart.js';
import { KeyedTable } from '../table.js';
import { form, field, select, input } from '../forms.js';

// History survives leaving the page and coming back.
const queued = new Chart('Queued messages', [
  { key: 'ready', label: 'Ready', color: '#edc240' },
  { key: 'unacked', label: 'Unacked', color: '#afd8f8' },
  { key: 'total', label: 'Total', color: '#cb4b4b' },
], { format: num });
const rates = new Chart('Message rates', [
  { key: 'publish', label: 'Publish', color: '#edc240' },
  { key: 'confirm', label: 'Publisher confirm', color: '#afd8f8' },
  { key: 'deliver_get', label: 'Deliver / get', color: '#cb4b4b' },
  { key: 'redeliver', label: 'Redelivered', color: '#4da74d' },
  { key: 'ack', label: 'Consumer ack', color: '#9440ed' },
  { key: 'return_unroutable', label: 'Unroutable (return)', color: '#bd9b33' },
  { key: 'drop_unroutable', label: 'Unroutable (drop)', color: '#8cacc6' },
], { format: rate });

export function overviewPage(main, ctx) {
  const totals = h('div', { class: 'totals', id: 'object-totals' });
  const totalCells = {};
  for (const [k, label] of [['connections', 'Connections'], ['channels', 'Channels'], ['exchanges', 'Exchanges'], ['queues', 'Queues'], ['consumers', 'Consumers']]) {
    totalCells[k] = h('span', { class: 'total-value' });
    totals.append(h('a', { class: 'total', href: k === 'consumers' ? '#/queues' : `#/${k}` }, totalCells[k], h('span', { class: 'total-label' }, label)));
  }
  const nodes = new KeyedTable([
    { label: 'Name', cell: (n) => n.name },
    { label: 'File descriptors', cls: 'num', cell: (n) => `${num(n.fd_used)} / ${num(n.fd_total)}` },
    { label: 'Sockets', cls: 'num', cell: (n) => `${num(n.sockets_used)} / ${num(n.sockets_total)}` },
    { label: 'Tasks', cls: 'num', cell: (n) => num(n.proc_used) },
    { label: 'Memory', cls: 'num', cell: (n) => meter(n.mem_used, n.mem_limit, n.mem_alarm, 'memory alarm') },
    { label: 'Disk free', cls: 'num', cell: (n) => meter(n.disk_free, n.disk_free_limit, n.disk_free_alarm, 'disk alarm', true) },
    { label: 'Uptime', cls: 'num', cell: (n) => duration(n.uptime) },
    { label: 'Cores', cls: 'num', cell: (n) => num(n.processors) },
    { label: 'Type', cell: (n) => n.type },
  ], (n) => n.name, { id: 'nodes', empty: 'Node details need the monitoring tag' });
  const churn = new KeyedTable([
    { label: 'Event', cell: (c) => c.label },
    { label: 'Total', cls: 'num', cell: (c) => num(c.total) },
    { label: 'Rate', cls: 'num', cell: (c) => rate(c.rate) },
  ], (c) => c.key);
  const listeners = new KeyedTable([
    { label: 'Protocol', cell: (l) => l.protocol },
    { label: 'Bound to', cell: (l) => l.ip_address },
    { label: 'Port', cls: 'num', cell: (l) => String(l.port) },
  ], (l) => `${l.protocol}:${l.port}`);
  const [info, updateInfo] = facts([
    ['Product', (o) => `${o.product_name} ${o.product_version}`],
    ['RabbitMQ compatibility', (o) => o.rabbitmq_version],
    ['Cluster', (o) => o.cluster_name],
    ['Node', (o) => o.node],
    ['Rates mode', (o) => o.rates_mode],
  ]);

  main.append(
    h('h1', {}, 'Overview'),
    totals,
    section('Totals', h('div', { class: 'charts' }, queued.el, rates.el)),
    section('Nodes', nodes.el),
    section('Churn statistics', churn.el),
    section('Ports and contexts', listeners.el),
    section('Broker', info),
  );
  if (ctx.isAdmin) main.append(definitionsSection(ctx));

  return {
    async refresh() {
      const [o, ns] = await Promise.all([get('/overview'), ctx.isMonitor ? get('/nodes') : []]);
      for (const [k, el] of Object.entries(totalCells)) setText(el, num(o.object_totals[k]));
      const q = o.queue_totals;
      queued.push({ ready: q.messages_ready, unacked: q.messages_unacknowledged, total: q.messages });
      const values = {};
      for (const s of rates.series) values[s.key] = at(o, `message_stats.${s.key}_details.rate`) || 0;
      rates.push(values);
      nodes.update(ns);
      const c = o.churn_rates || {};
      churn.update([
        ['connection_created', 'Connections opened'], ['connection_closed', 'Connections closed'],
        ['channel_created', 'Channels opened'], ['channel_closed', 'Channels closed'],
        ['queue_declared', 'Queues declared'], ['queue_created', 'Queues created'], ['queue_deleted', 'Queues deleted'],
      ].map(([key, label]) => ({ key, label, total: c[key], rate: at(c, `${key}_details.rate`) })));
      listeners.update(o.listeners || []);
      updateInfo(o);
    },
  };
}

// "used / limit" with a bar; red when the alarm is on.
function meter(used, limit, alarm, what, inverse = false) {
  const text = `${bytes(used)} ${inverse ? 'free, limit' : 'of'} ${bytes(limit)}`;
  return h('span', { class: alarm ? 'alarm' : '' }, alarm ? `${text} — ${what}` : text);
}

function definitionsSection(ctx) {
  const vhostChoice = () => select('vhost', [['', 'All virtual hosts'], ...ctx.vhosts.map((v) => [v, v])]);
  const exportForm = form('export-definitions', 'Download broker definitions', [
    field('Virtual host', vhostChoice()),
  ], async ({ vhost }) => {
    const defs = await get(vhost ? path`/definitions/${vhost}` : '/definitions');
    const blob = new Blob([JSON.stringify(defs, null, 2)], { type: 'application/json' });
    const a = h('a', { href: URL.createObjectURL(blob), download: definitionsFileName(vhost) });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    return 'Definitions downloaded';
  }, { reset: false });
  const importForm = form('import-definitions', 'Upload broker definitions', [
    field('Definitions file', input('file', { type: 'file', accept: '.json,application/json', id: 'definitions-file' })),
    field('Virtual host', vhostChoice()),
  ], async ({ file, vhost }) => {
    if (!file || !file.length) throw new Error('Choose a definitions file first');
    const text = await file[0].text();
    try { JSON.parse(text); } catch { throw new Error('The file is not JSON'); }
    await post(vhost ? path`/definitions/${vhost}` : '/definitions', text);
    await ctx.reloadVhosts();
    return 'Definitions imported';
  });
  return section('Export and import definitions', h('div', { class: 'two-forms' }, exportForm, importForm));
}

function definitionsFileName(vhost) {
  const d = new Date();
  const day = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  return `warren_${vhost ? vhost.replace(/[^A-Za-z0-9_-]/g, '_') + '_' : ''}${day}.json`;
}
