// Queues: the listing (server-side paging, so 10 000 queues cost one page) with the add
// form, and one queue's page: counts and chart, consumers, bindings, arguments and
// policy, publish, get messages, purge and delete.

import { h, section, facts, clear, flash } from '../dom.js';
import { get, put, post, del, path } from '../api.js';
import { num, bytes, features, rateOf, time } from '../fmt.js';
import { ListView } from '../table.js';
import { Chart } from '../chart.js';
import { form, field, input, select, argsEditor, dangerButton } from '../forms.js';
import { bindingsTable, bindingForm, publishForm, vhostSelect, settingsFacts } from './exchanges.js';
import { consumersTable } from './connections.js';

const QUEUE_ARGS = [
  ['x-message-ttl', 'number'], ['x-expires', 'number'], ['x-max-length', 'number'],
  ['x-max-length-bytes', 'number'], ['x-overflow', 'string'], ['x-dead-letter-exchange', 'string'],
  ['x-dead-letter-routing-key', 'string'], ['x-single-active-consumer', 'boolean'],
  ['x-max-priority', 'number'], ['x-queue-mode', 'string'], ['x-queue-type', 'string'],
];

export function queuesPage(main, ctx) {
  const list = new ListView({
    id: 'queues', resource: 'queues', vhost: ctx.vhost,
    keyOf: (q) => `${q.vhost}\n${q.name}`,
    fields: ['name', 'vhost', 'type', 'durable', 'auto_delete', 'exclusive', 'arguments', 'policy', 'state',
      'messages_ready', 'messages_unacknowledged', 'messages', 'consumers',
      'message_stats.publish_details', 'message_stats.deliver_get_details', 'message_stats.ack_details'],
    columns: [
      { label: 'Virtual host', sort: 'vhost', cell: (q) => q.vhost },
      { label: 'Name', sort: 'name', cell: (q) => h('a', { href: `#/queues/${encodeURIComponent(q.vhost)}/${encodeURIComponent(q.name)}` }, q.name) },
      { label: 'Type', sort: 'type', cell: (q) => q.type },
      { label: 'Features', cell: (q) => features(q), title: 'D: durable, AD: auto-delete, Excl: exclusive' },
      { label: 'Policy', sort: 'policy', cell: (q) => q.policy || '' },
      { label: 'State', sort: 'state', cell: (q) => q.state },
      { label: 'Ready', sort: 'messages_ready', cls: 'num', cell: (q) => num(q.messages_ready) },
      { label: 'Unacked', sort: 'messages_unacknowledged', cls: 'num', cell: (q) => num(q.messages_unacknowledged) },
      { label: 'Total', sort: 'messages', cls: 'num', cell: (q) => num(q.messages) },
      { label: 'Consumers', sort: 'consumers', cls: 'num', cell: (q) => num(q.consumers) },
      { label: 'Incoming', sort: 'message_stats.publish_details.rate', cls: 'num', cell: (q) => rateOf(q, 'publish') },
      { label: 'Deliver / get', sort: 'message_stats.deliver_get_details.rate', cls: 'num', cell: (q) => rateOf(q, 'deliver_get') },
      { label: 'Ack', sort: 'message_stats.ack_details.rate', cls: 'num', cell: (q) => rateOf(q, 'ack') },
    ],
  });
  const add = form('add-queue', 'Add queue', [
    field('Virtual host', vhostSelect(ctx)),
    field('Type', select('type', [['classic', 'Classic'], ['quorum', 'Quorum'], ['stream', 'Stream']], 'classic')),
    field('Name', input('name', { required: true })),
    field('Durability', select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true')),
    field('Auto delete', select('auto_delete', [['false', 'No'], ['true', 'Yes']], 'false')),
    field('Arguments', argsEditor('arguments', QUEUE_ARGS)),
  ], async (v) => {
    const a = { ...v.arguments };
    if (v.type !== 'classic') a['x-queue-type'] = v.type;
    await put(path`/queues/${v.vhost}/${v.name}`, { durable: v.durable === 'true', auto_delete: v.auto_delete === 'true', arguments: a });
    await list.refresh();
    return `Queue ${v.name} added`;
  });
  main.append(h('h1', {}, 'Queues'), list.el, section('Add a new queue', add));
  return { refresh: () => list.refresh() };
}

export function queuePage(main, ctx, vhost, name) {
  const [overview, update] = facts([
    ['Virtual host', (q) => q.vhost],
    ['Type', (q) => q.type],
    ['State', (q) => q.state],
    ...settingsFacts(),
    ['Consumers', (q) => num(q.consumers)],
    ['Consumer capacity', (q) => `${Math.round((q.consumer_capacity || 0) * 100)}%`],
    ['Exclusive consumer', (q) => q.exclusive_consumer_tag || ''],
    ['Idle since', (q) => (q.idle_since ? q.idle_since.replace('T', ' ').replace(/\.\d+|Z$/g, '') : '')],
  ]);
  const [counts, updateCounts] = facts([
    ['Ready', (q) => num(q.messages_ready)],
    ['Unacked', (q) => num(q.messages_unacknowledged)],
    ['Total', (q) => num(q.messages)],
    ['Paged out', (q) => num(q.messages_paged_out)],
    ['Bytes ready', (q) => bytes(q.message_bytes_ready)],
    ['Bytes in memory', (q) => bytes(q.message_bytes_ram)],
    ['Incoming', (q) => rateOf(q, 'publish')],
    ['Deliver / get', (q) => rateOf(q, 'deliver_get')],
    ['Ack', (q) => rateOf(q, 'ack')],
    ['Redelivered', (q) => rateOf(q, 'redeliver')],
  ]);
  const chart = new Chart('Queued messages', [
    { key: 'ready', label: 'Ready', color: '#edc240' },
    { key: 'unacked', label: 'Unacked', color: '#afd8f8' },
  ], { format: num });
  const consumers = consumersTable('queue-consumers');
  const bindings = bindingsTable('queue-bindings', 'from');
  const getResult = h('div', { id: 'get-result' });
  const getForm = form('get-messages', 'Get message(s)', [
    h('p', { class: 'warning' }, 'Getting messages from a queue is a destructive action unless requeued.'),
    field('Ack mode', select('ackmode', [['ack_requeue_true', 'Nack message requeue true'], ['ack_requeue_false', 'Automatic ack'], ['reject_requeue_true', 'Reject requeue true'], ['reject_requeue_false', 'Reject requeue false']], 'ack_requeue_true')),
    field('Encoding', select('encoding', [['auto', 'Auto string / base64'], ['base64', 'base64']], 'auto')),
    field('Messages', input('count', { type: 'number', min: 1, value: '1', 'data-keep': 'true' })),
  ], async (v) => {
    const msgs = await post(path`/queues/${vhost}/${name}/get`, { count: Number(v.count) || 1, ackmode: v.ackmode, encoding: v.encoding, truncate: 50000 });
    showMessages(getResult, msgs);
    await refresh();
    return null;
  }, { reset: false });

  main.append(h('h1', {}, 'Queue ', h('b', {}, name), h('span', { class: 'muted' }, ` in virtual host ${vhost}`)),
    section('Overview', h('div', { class: 'columns' }, overview, counts), chart.el),
    section('Consumers', consumers.el),
    section('Bindings', h('p', { class: 'muted' }, 'From the default exchange, implicitly, with routing key ', h('code', {}, name), '.'), bindings.el,
      h('h3', {}, 'Add binding to this queue'),
      bindingForm('add-binding', async (v) => {
        await post(path`/bindings/${vhost}/e/${v.source}/q/${name}`, { routing_key: v.routing_key, arguments: v.arguments });
        await refresh();
        return 'Binding added';
      }, false)),
    section('Publish message', publishForm(vhost, '', false, name)),
    section('Get messages', getForm, getResult),
    section('Delete or purge', h('div', { class: 'actions' },
      dangerButton('Delete queue', `Delete queue ${name}?`, async () => {
        await del(path`/queues/${vhost}/${name}`);
        location.hash = '#/queues';
        return `Queue ${name} deleted`;
      }),
      dangerButton('Purge messages', `Purge the messages of queue ${name}?`, async () => {
        await del(path`/queues/${vhost}/${name}/contents`);
        await refresh();
        return `Queue ${name} purged`;
      }))),
  );

  async function refresh() {
    const [q, bs] = await Promise.all([get(path`/queues/${vhost}/${name}`), get(path`/queues/${vhost}/${name}/bindings`)]);
    update(q);
    updateCounts(q);
    chart.push({ ready: q.messages_ready, unacked: q.messages_unacknowledged });
    consumers.update(q.consumer_details || []);
    bindings.update(bs.filter((b) => b.source !== '').map((b) => ({ ...b, refresh })));
  }
  return { refresh };
}

function showMessages(el, msgs) {
  clear(el);
  if (!msgs.length) {
    el.append(h('p', { class: 'muted', id: 'queue-empty' }, 'Queue is empty'));
    return;
  }
  msgs.forEach((m, i) => {
    const p = m.properties || {};
    const props = Object.entries(p).filter(([k]) => k !== 'headers')
      .map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, k === 'timestamp' ? `${v} (${time(v * 1000)})` : String(v))));
    const headers = Object.entries(p.headers || {}).map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))));
    el.append(h('div', { class: 'message' },
      h('h3', {}, `Message ${i + 1}`),
      h('p', {}, `The server reported ${num(m.message_count)} message${m.message_count === 1 ? '' : 's'} remaining.`),
      h('table', { class: 'facts message-facts' }, h('tbody', {},
        h('tr', {}, h('th', {}, 'Exchange'), h('td', {}, m.exchange || '(AMQP default)')),
        h('tr', {}, h('th', {}, 'Routing key'), h('td', {}, m.routing_key)),
        h('tr', {}, h('th', {}, 'Redelivered'), h('td', {}, m.redelivered ? '●' : '○')),
        h('tr', {}, h('th', {}, 'Properties'), h('td', {}, h('table', { class: 'mini message-properties' }, h('tbody', {}, props)))),
        headers.length ? h('tr', {}, h('th', {}, 'Headers'), h('td', {}, h('table', { class: 'mini message-headers' }, h('tbody', {}, headers)))) : null,
        h('tr', {}, h('th', {}, 'Payload'), h('td', {}, h('div', { class: 'muted' }, `${num(m.payload_bytes)} bytes, encoding: ${m.payload_encoding}`), h('pre', { class: 'payload' }, m.payload))),
      ))));
  });
  flash(`${msgs.length} message${msgs.length === 1 ? '' : 's'} fetched`);
}


