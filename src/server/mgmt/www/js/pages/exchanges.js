// Exchanges: the listing with the add form, one exchange's page (bindings both ways, add
// binding, publish, delete), and the binding and publish forms the queue page shares.

import { h, section, facts, link } from '../dom.js';
import { get, put, post, del, path } from '../api.js';
import { args, features, rateOf } from '../fmt.js';
import { ListView, KeyedTable } from '../table.js';
import { form, field, input, select, argsEditor, textarea, dangerButton } from '../forms.js';

export const TYPES = ['direct', 'fanout', 'headers', 'topic'];
export const exchangeLabel = (name) => name || '(AMQP default)';
// The default exchange in paths, as the API names it.
export const exchangePath = (name) => name || 'amq.default';

// The facts a queue's and an exchange's pages share: features, arguments and policies.
export function settingsFacts() {
  return [
    ['Features', (o) => [o.durable ? 'durable' : 'transient', o.auto_delete ? 'auto-delete' : '', o.exclusive ? 'exclusive' : '', o.internal ? 'internal' : ''].filter(Boolean).join(', ')],
    ['Arguments', (o) => args(o.arguments)],
    ['Policy', (o) => o.policy || ''],
    ['Operator policy', (o) => o.operator_policy || ''],
    ['Effective policy definition', (o) => args(o.effective_policy_definition)],
  ];
}

export function vhostSelect(ctx, name = 'vhost') {
  const chosen = ctx.vhost() || (ctx.vhosts.includes('/') ? '/' : ctx.vhosts[0]);
  return select(name, ctx.vhosts, chosen);
}

export function exchangesPage(main, ctx) {
  const list = new ListView({
    id: 'exchanges', resource: 'exchanges', vhost: ctx.vhost,
    keyOf: (e) => `${e.vhost}\n${e.name}`,
    fields: ['name', 'vhost', 'type', 'durable', 'auto_delete', 'internal', 'arguments', 'policy', 'message_stats'],
    columns: [
      { label: 'Virtual host', sort: 'vhost', cell: (e) => e.vhost },
      { label: 'Name', sort: 'name', cell: (e) => link(exchangeLabel(e.name), 'exchanges', e.vhost, exchangePath(e.name)) },
      { label: 'Type', sort: 'type', cell: (e) => e.type },
      { label: 'Features', cell: (e) => features(e), title: 'D: durable, AD: auto-delete, I: internal' },
      { label: 'Policy', sort: 'policy', cell: (e) => e.policy || '' },
      { label: 'Message rate in', sort: 'message_stats.publish_in_details.rate', cls: 'num', cell: (e) => rateOf(e, 'publish_in') },
      { label: 'Message rate out', sort: 'message_stats.publish_out_details.rate', cls: 'num', cell: (e) => rateOf(e, 'publish_out') },
    ],
  });
  const add = form('add-exchange', 'Add exchange', [
    field('Virtual host', vhostSelect(ctx)),
    field('Name', input('name', { required: true })),
    field('Type', select('type', TYPES, 'direct')),
    field('Durability', select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true')),
    field('Auto delete', select('auto_delete', [['false', 'No'], ['true', 'Yes']], 'false')),
    field('Internal', select('internal', [['false', 'No'], ['true', 'Yes']], 'false')),
    field('Arguments', argsEditor('arguments', [['alternate-exchange', 'string']])),
  ], async (v) => {
    await put(path`/exchanges/${v.vhost}/${v.name}`, {
      type: v.type, durable: v.durable === 'true', auto_delete: v.auto_delete === 'true',
      internal: v.internal === 'true', arguments: v.arguments,
    });
    await list.refresh();
    return `Exchange ${v.name} added`;
  });
  main.append(h('h1', {}, 'Exchanges'), list.el, section('Add a new exchange', add));
  return { refresh: () => list.refresh() };
}

export function exchangePage(main, ctx, vhost, name) {
  const [overview, update] = facts([
    ['Virtual host', (e) => e.vhost],
    ['Type', (e) => e.type],
    ...settingsFacts(),
    ['Message rate in', (e) => rateOf(e, 'publish_in')],
    ['Message rate out', (e) => rateOf(e, 'publish_out')],
  ]);
  const source = bindingsTable('bindings-source', 'to');
  const destination = bindingsTable('bindings-destination', 'from');
  const isDefault = name === 'amq.default';
  main.append(h('h1', {}, 'Exchange ', h('b', {}, exchangeLabel(isDefault ? '' : name)), h('span', { class: 'muted' }, ` in virtual host ${vhost}`)),
    section('Overview', overview),
    section('Bindings from this exchange', isDefault ? h('p', { class: 'muted' }, 'The default exchange is implicitly bound to every queue, with the queue\'s name as routing key.') : source.el),
    section('Bindings to this exchange', destination.el));
  if (!isDefault) {
    main.append(section('Add binding from this exchange', bindingForm('add-binding', async (v) => {
      await post(path`/bindings/${vhost}/e/${name}/${v.destination_type}/${v.destination}`,
        { routing_key: v.routing_key, arguments: v.arguments });
      await refresh();
      return 'Binding added';
    }, true)));
  }
  main.append(section('Publish message', publishForm(vhost, name, true)));
  if (!isDefault && !name.startsWith('amq.')) {
    main.append(section('Delete this exchange', dangerButton('Delete', `Delete exchange ${name}?`, async () => {
      await del(path`/exchanges/${vhost}/${name}`);
      location.hash = '#/exchanges';
      return `Exchange ${name} deleted`;
    })));
  }
  async function refresh() {
    const [e, from, to] = await Promise.all([
      get(path`/exchanges/${vhost}/${name}`),
      isDefault ? [] : get(path`/exchanges/${vhost}/${name}/bindings/source`),
      get(path`/exchanges/${vhost}/${name}/bindings/destination`),
    ]);
    update(e);
    source.update(from.map((b) => ({ ...b, refresh })));
    destination.update(to.map((b) => ({ ...b, refresh })));
  }
  return { refresh };
}

// Bindings, with an Unbind button each. `side` is which end the table shows.
export function bindingsTable(id, side) {
  const other = (b) => (side === 'to'
    ? (b.destination_type === 'queue' ? link(b.destination, 'queues', b.vhost, b.destination) : link(b.destination, 'exchanges', b.vhost, b.destination))
    : (b.source === '' ? h('span', {}, exchangeLabel('')) : link(b.source, 'exchanges', b.vhost, b.source)));
  return new KeyedTable([
    { label: side === 'to' ? 'To' : 'From', cell: other },
    ...(side === 'to' ? [{ label: 'Type', cell: (b) => b.destination_type }] : []),
    { label: 'Routing key', cell: (b) => b.routing_key },
    { label: 'Arguments', cell: (b) => args(b.arguments) },
    {
      label: '', cell: (b) => (b.source === '' ? h('span', { class: 'muted' }, '(implicit)') : h('button', {
        type: 'button', class: 'small', dataset: { unbind: `${b.source}|${b.destination}|${b.routing_key}` },
        onclick: async () => {
          const kind = b.destination_type === 'queue' ? 'q' : 'e';
          await del(path`/bindings/${b.vhost}/e/${b.source}/${kind}/${b.destination}/${b.properties_key}`);
          await b.refresh();
        },
      }, 'Unbind')),
    },
  ], (b) => `${b.source}\n${b.destination_type}\n${b.destination}\n${b.properties_key}`, { id, empty: 'No bindings' });
}

// The add-binding form: from an exchange page (destination chosen) or a queue page
// (source exchange chosen).
export function bindingForm(id, action, fromExchange) {
  const fields = fromExchange
    ? [field('To', h('span', { class: 'inline' }, select('destination_type', [['q', 'Queue'], ['e', 'Exchange']], 'q'), input('destination', { required: true, 'aria-label': 'Destination' })))]
    : [field('From exchange', input('source', { required: true }))];
  return form(id, 'Bind', [
    ...fields,
    field('Routing key', input('routing_key')),
    field('Arguments', argsEditor('arguments', [['x-match', 'string']])),
  ], action);
}

const PROPERTY_SUGGESTIONS = ['content_type', 'content_encoding', 'correlation_id', 'reply_to', 'expiration', 'message_id', 'timestamp', 'type', 'user_id', 'app_id', 'cluster_id', 'priority']
  .map((k) => [k, k === 'timestamp' || k === 'priority' ? 'number' : 'string']);

// Publishes through POST /api/exchanges/{vhost}/{name}/publish; from a queue page, to
// the default exchange with the queue's name as routing key.
export function publishForm(vhost, exchange, withRoutingKey, routingKey = '') {
  return form('publish-message', 'Publish message', [
    withRoutingKey ? field('Routing key', input('routing_key')) : h('p', { class: 'muted' }, `Published to the default exchange with routing key "${routingKey}", routing it to this queue.`),
    field('Delivery mode', select('delivery_mode', [['1', '1 - Non-persistent'], ['2', '2 - Persistent']], '1')),
    field('Headers', argsEditor('headers')),
    field('Properties', argsEditor('properties', PROPERTY_SUGGESTIONS)),
    field('Payload', textarea('payload')),
    field('Payload encoding', select('payload_encoding', [['string', 'String (default)'], ['base64', 'Base64']], 'string')),
  ], async (v) => {
    const properties = { ...v.properties, delivery_mode: Number(v.delivery_mode) };
    if (Object.keys(v.headers).length) properties.headers = v.headers;
    const r = await post(path`/exchanges/${vhost}/${exchangePath(exchange)}/publish`, {
      properties, routing_key: withRoutingKey ? v.routing_key : routingKey,
      payload: v.payload, payload_encoding: v.payload_encoding,
    });
    if (!r.routed) throw new Error('Message published, but not routed.');
    return 'Message published.';
  });
}
