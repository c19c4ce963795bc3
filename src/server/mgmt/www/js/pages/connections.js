// Connections and channels: listings, one connection's page (with its channels and the
// close form) and one channel's page.

import { h, section, facts, link, flash } from '../dom.js';
import { get, request, credentials, path } from '../api.js';
import { num, bytesRate, time, yesno, rateOf, args } from '../fmt.js';
import { ListView, KeyedTable } from '../table.js';
import { form, field, input } from '../forms.js';

export function stateBadge(state) {
  const bad = state === 'blocked' || state === 'blocking';
  return h('span', { class: `state ${bad ? 'state-blocked' : 'state-' + state}` }, state);
}

const CONNECTION_COLUMNS = [
  { label: 'Name', sort: 'name', cell: (c) => h('span', {}, link(c.name, 'connections', c.name), c.user_provided_name ? h('span', { class: 'muted' }, ` ${c.user_provided_name}`) : null) },
  { label: 'Virtual host', sort: 'vhost', cell: (c) => c.vhost },
  { label: 'User', sort: 'user', cell: (c) => c.user },
  { label: 'State', sort: 'state', cell: (c) => stateBadge(c.state) },
  { label: 'TLS', cell: (c) => (c.ssl ? c.ssl_protocol || 'yes' : '○') },
  { label: 'Protocol', cell: (c) => c.protocol },
  { label: 'Channels', sort: 'channels', cls: 'num', cell: (c) => num(c.channels) },
  { label: 'From client', sort: 'recv_oct_details.rate', cls: 'num', cell: (c) => bytesRate(c.recv_oct_details && c.recv_oct_details.rate) },
  { label: 'To client', sort: 'send_oct_details.rate', cls: 'num', cell: (c) => bytesRate(c.send_oct_details && c.send_oct_details.rate) },
];

export function connectionsPage(main, ctx) {
  const list = new ListView({
    id: 'connections', resource: 'connections', columns: CONNECTION_COLUMNS, keyOf: (c) => c.name,
    fields: ['name', 'user_provided_name', 'vhost', 'user', 'state', 'ssl', 'ssl_protocol', 'protocol', 'channels', 'recv_oct_details', 'send_oct_details'],
    vhost: ctx.vhost, vhostPath: (v) => path`/vhosts/${v}/connections`,
  });
  main.append(h('h1', {}, 'Connections'), list.el);
  return { refresh: () => list.refresh() };
}

const CHANNEL_COLUMNS = [
  { label: 'Channel', sort: 'name', cell: (c) => link(c.name, 'channels', c.name) },
  { label: 'Virtual host', sort: 'vhost', cell: (c) => c.vhost },
  { label: 'User', sort: 'user', cell: (c) => c.user },
  { label: 'Mode', cell: (c) => [c.confirm ? 'C' : '', c.transactional ? 'T' : ''].join(' ').trim() },
  { label: 'State', cell: (c) => stateBadge(c.state) },
  { label: 'Prefetch', cls: 'num', cell: (c) => num(c.prefetch_count) },
  { label: 'Unacked', sort: 'messages_unacknowledged', cls: 'num', cell: (c) => num(c.messages_unacknowledged) },
  { label: 'Consumers', sort: 'consumer_count', cls: 'num', cell: (c) => num(c.consumer_count) },
  { label: 'Publish', sort: 'message_stats.publish_details.rate', cls: 'num', cell: (c) => rateOf(c, 'publish') },
  { label: 'Confirm', cls: 'num', cell: (c) => rateOf(c, 'confirm') },
  { label: 'Deliver / get', sort: 'message_stats.deliver_get_details.rate', cls: 'num', cell: (c) => rateOf(c, 'deliver_get') },
  { label: 'Ack', cls: 'num', cell: (c) => rateOf(c, 'ack') },
];

export function channelsPage(main, ctx) {
  const list = new ListView({
    id: 'channels', resource: 'channels', columns: CHANNEL_COLUMNS, keyOf: (c) => c.name,
    vhost: ctx.vhost, vhostPath: (v) => path`/vhosts/${v}/channels`,
  });
  main.append(h('h1', {}, 'Channels'), list.el);
  return { refresh: () => list.refresh() };
}

export function connectionPage(main, ctx, name) {
  const [overview, update] = facts([
    ['Name', (c) => c.name],
    ['Client-provided name', (c) => c.user_provided_name || ''],
    ['Virtual host', (c) => c.vhost],
    ['User', (c) => c.user],
    ['State', (c) => stateBadge(c.state)],
    ['Protocol', (c) => c.protocol],
    ['Authentication', (c) => c.auth_mechanism],
    ['Peer', (c) => `${c.peer_host}:${c.peer_port}`],
    ['Connected at', (c) => time(c.connected_at)],
    ['TLS', (c) => (c.ssl ? `${c.ssl_protocol || 'yes'}${c.peer_cert_subject ? ', peer ' + c.peer_cert_subject : ''}` : 'no')],
    ['Heartbeat', (c) => `${c.timeout} s`],
    ['Frame max', (c) => `${num(c.frame_max)} bytes`],
    ['Channel max', (c) => num(c.channel_max)],
    ['From client', (c) => bytesRate(c.recv_oct_details && c.recv_oct_details.rate)],
    ['To client', (c) => bytesRate(c.send_oct_details && c.send_oct_details.rate)],
  ]);
  const [client, updateClient] = facts([
    ['Product', (c) => c.client_properties.product || ''],
    ['Version', (c) => c.client_properties.version || ''],
    ['Platform', (c) => c.client_properties.platform || ''],
    ['Capabilities', (c) => args(c.client_properties.capabilities)],
  ]);
  const channels = new KeyedTable(CHANNEL_COLUMNS, (c) => c.name, { id: 'connection-channels', empty: 'No channels' });
  const close = form('close-connection', 'Force close', [
    field('Reason', input('reason', { value: 'Closed via management plugin', 'data-keep': 'true' })),
  ], async ({ reason }) => {
    if (!window.confirm(`Close connection ${name}?`)) return null;
    await requestClose(name, reason);
    flash('Connection closed');
    location.hash = '#/connections';
    return null;
  }, { reset: false });
  main.append(h('h1', {}, 'Connection ', h('b', {}, name)),
    section('Overview', overview), section('Client properties', client),
    section('Channels', channels.el), section('Close this connection', close));
  return {
    async refresh() {
      const [c, chs] = await Promise.all([get(path`/connections/${name}`), get(path`/connections/${name}/channels`)]);
      update(c);
      updateClient(c);
      channels.update(chs);
    },
  };
}

// DELETE with RabbitMQ's X-Reason header.
function requestClose(name, reason) {
  return request('DELETE', path`/connections/${name}`, undefined, credentials(), { 'X-Reason': reason });
}

export function channelPage(main, ctx, name) {
  const [overview, update] = facts([
    ['Connection', (c) => link(c.connection_details.name, 'connections', c.connection_details.name)],
    ['Virtual host', (c) => c.vhost],
    ['User', (c) => c.user],
    ['State', (c) => stateBadge(c.state)],
    ['Mode', (c) => (c.confirm ? 'confirm' : c.transactional ? 'transactional' : 'normal')],
    ['Prefetch count', (c) => num(c.prefetch_count)],
    ['Global prefetch count', (c) => num(c.global_prefetch_count)],
    ['Consumers', (c) => num(c.consumer_count)],
    ['Unacked', (c) => num(c.messages_unacknowledged)],
    ['Publish', (c) => rateOf(c, 'publish')],
    ['Deliver / get', (c) => rateOf(c, 'deliver_get')],
    ['Ack', (c) => rateOf(c, 'ack')],
    ['Redelivered', (c) => rateOf(c, 'redeliver')],
  ]);
  const consumers = consumersTable('channel-consumers');
  main.append(h('h1', {}, 'Channel ', h('b', {}, name)), section('Overview', overview), section('Consumers', consumers.el));
  return {
    async refresh() {
      const c = await get(path`/channels/${name}`);
      update(c);
      consumers.update(c.consumer_details || []);
    },
  };
}

export function consumersTable(id) {
  return new KeyedTable([
    { label: 'Consumer tag', cell: (c) => c.consumer_tag },
    { label: 'Queue', cell: (c) => link(c.queue.name, 'queues', c.queue.vhost, c.queue.name) },
    { label: 'Channel', cell: (c) => link(c.channel_details.name, 'channels', c.channel_details.name) },
    { label: 'Ack required', cell: (c) => yesno(c.ack_required) },
    { label: 'Exclusive', cell: (c) => yesno(c.exclusive) },
    { label: 'Prefetch', cls: 'num', cell: (c) => num(c.prefetch_count) },
    { label: 'Active', cell: (c) => (c.active ? '●' : '○') + ' ' + (c.activity_status || '') },
    { label: 'Arguments', cell: (c) => args(c.arguments) },
  ], (c) => `${c.channel_details.name}/${c.consumer_tag}`, { id, empty: 'No consumers' });
}
