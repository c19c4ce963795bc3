// Admin: users (with permissions, topic permissions and limits), virtual hosts (with
// permissions and limits), policies and operator policies, and limits. Administrators
// only, as the API's endpoints are.

import { h, section, facts, link, flash } from '../dom.js';
import { get, put, del, path } from '../api.js';
import { num, args, rate } from '../fmt.js';
import { ListView, KeyedTable } from '../table.js';
import { form, field, input, select, argsEditor, dangerButton } from '../forms.js';
import { vhostSelect } from './exchanges.js';

function adminNav(active, ctx) {
  const tabs = ctx.isAdmin ? [['users', 'Users'], ['vhosts', 'Virtual hosts'], ['policies', 'Policies'], ['limits', 'Limits']] : [['policies', 'Policies']];
  return h('nav', { class: 'subtabs' }, tabs.map(([k, label]) => h('a', { href: `#/${k}`, class: k === active ? 'active' : '' }, label)));
}

const tagList = (t) => (Array.isArray(t) ? t : String(t || '').split(',').filter(Boolean));
const TAGS = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'];

function tagsInput() {
  const el = input('tags', { placeholder: 'e.g. administrator, monitoring' });
  const quick = h('span', { class: 'hint' }, 'Set: ', TAGS.map((t) => h('button', {
    type: 'button', class: 'link', onclick: () => {
      const have = tagList(el.value).map((x) => x.trim()).filter(Boolean);
      if (!have.includes(t)) el.value = [...have, t].join(', ');
    },
  }, t)));
  return h('span', { class: 'inline' }, el, quick);
}

export function usersPage(main, ctx) {
  const list = new ListView({
    id: 'users', resource: 'users', keyOf: (u) => u.name, sort: 'name',
    fields: ['name', 'tags', 'password_hash', 'limits'],
    columns: [
      { label: 'Name', sort: 'name', cell: (u) => link(u.name, 'users', u.name) },
      { label: 'Tags', cell: (u) => tagList(u.tags).join(', ') },
      { label: 'Has password', cell: (u) => (u.password_hash ? '●' : '○') },
      { label: 'Limits', cell: (u) => args(u.limits) },
    ],
  });
  const add = form('add-user', 'Add user', [
    field('Username', input('name', { required: true })),
    field('Password', input('password', { type: 'password', autocomplete: 'new-password' }), 'Leave empty for a user that cannot log in with a password.'),
    field('Tags', tagsInput()),
  ], async (v) => {
    const body = { tags: v.tags };
    if (v.password) body.password = v.password;
    else body.password_hash = '';
    await put(path`/users/${v.name}`, body);
    await list.refresh();
    return `User ${v.name} added`;
  });
  main.append(adminNav('users', ctx), h('h1', {}, 'Users'), list.el, section('Add a user', add));
  return { refresh: () => list.refresh() };
}

function permissionsTable(id, by) {
  return new KeyedTable([
    by === 'user' ? { label: 'Virtual host', cell: (p) => link(p.vhost, 'vhosts', p.vhost) } : { label: 'User', cell: (p) => link(p.user, 'users', p.user) },
    { label: 'Configure', cell: (p) => p.configure },
    { label: 'Write', cell: (p) => p.write },
    { label: 'Read', cell: (p) => p.read },
    { label: '', cell: (p) => h('button', { type: 'button', class: 'small', onclick: () => p.clear() }, 'Clear') },
  ], (p) => `${p.vhost}\n${p.user}`, { id, empty: 'No permissions' });
}

function topicTable(id) {
  return new KeyedTable([
    { label: 'Virtual host', cell: (p) => p.vhost },
    { label: 'Exchange', cell: (p) => p.exchange },
    { label: 'Write', cell: (p) => p.write },
    { label: 'Read', cell: (p) => p.read },
    { label: '', cell: (p) => h('button', { type: 'button', class: 'small', onclick: () => p.clear() }, 'Clear') },
  ], (p) => `${p.vhost}\n${p.exchange}`, { id, empty: 'No topic permissions' });
}

function permissionForm(id, choose, submit) {
  return form(id, 'Set permission', [
    ...choose,
    field('Configure regexp', input('configure', { value: '.*', 'data-keep': 'true' })),
    field('Write regexp', input('write', { value: '.*', 'data-keep': 'true' })),
    field('Read regexp', input('read', { value: '.*', 'data-keep': 'true' })),
  ], submit, { reset: false });
}

function limitForm(id, names, target, after) {
  return form(id, 'Set limit', [
    field('Limit', select('limit', names, names[0])),
    field('Value', input('value', { type: 'number', required: true })),
  ], async (v) => {
    await put(`${target}/${encodeURIComponent(v.limit)}`, { value: Number(v.value) });
    await after();
    return `Limit ${v.limit} set`;
  });
}

function limitsTable(id, clearPath) {
  return new KeyedTable([
    { label: 'Limit', cell: (l) => l.name },
    { label: 'Value', cls: 'num', cell: (l) => num(l.value) },
    {
      label: '', cell: (l) => h('button', {
        type: 'button', class: 'small', onclick: async () => {
          await del(`${clearPath}/${encodeURIComponent(l.name)}`);
          flash(`Limit ${l.name} cleared`);
          await l.refresh();
        },
      }, 'Clear'),
    },
  ], (l) => l.name, { id, empty: 'No limits' });
}

export function userPage(main, ctx, name) {
  const [overview, update] = facts([
    ['Tags', (u) => tagList(u.tags).join(', ')],
    ['Can log in with password', (u) => (u.password_hash ? 'yes' : 'no')],
    ['Hashing algorithm', (u) => u.hashing_algorithm || ''],
  ]);
  const perms = permissionsTable('user-permissions', 'user');
  const topics = topicTable('user-topic-permissions');
  const limits = limitsTable('user-limits', path`/user-limits/${name}`);
  const setPerm = permissionForm('set-permission', [field('Virtual host', vhostSelect(ctx))], async (v) => {
    await put(path`/permissions/${v.vhost}/${name}`, { configure: v.configure, write: v.write, read: v.read });
    await refresh();
    return `Permissions of ${name} in ${v.vhost} set`;
  });
  const setTopic = form('set-topic-permission', 'Set topic permission', [
    field('Virtual host', vhostSelect(ctx)),
    field('Exchange', input('exchange', { value: 'amq.topic', 'data-keep': 'true' })),
    field('Write regexp', input('write', { value: '.*', 'data-keep': 'true' })),
    field('Read regexp', input('read', { value: '.*', 'data-keep': 'true' })),
  ], async (v) => {
    await put(path`/topic-permissions/${v.vhost}/${name}`, { exchange: v.exchange, write: v.write, read: v.read });
    await refresh();
    return 'Topic permission set';
  }, { reset: false });
  const setLimit = limitForm('set-user-limit', ['max-connections', 'max-channels'], path`/user-limits/${name}`, () => refresh());
  const updateUser = form('update-user', 'Update user', [
    field('Password', input('password', { type: 'password', autocomplete: 'new-password' }), 'Leave empty to keep the password.'),
    field('Tags', tagsInput()),
  ], async (v) => {
    const body = { tags: v.tags };
    if (v.password) body.password = v.password;
    else body.password_hash = current.password_hash;
    await put(path`/users/${name}`, body);
    await refresh();
    return `User ${name} updated`;
  });
  let current = {};
  main.append(adminNav('users', ctx), h('h1', {}, 'User ', h('b', {}, name)),
    section('Overview', overview),
    section('Permissions', perms.el, setPerm),
    section('Topic permissions', topics.el, setTopic),
    section('User limits', limits.el, setLimit),
    section('Update this user', updateUser),
    section('Delete this user', dangerButton('Delete', `Delete user ${name}?`, async () => {
      await del(path`/users/${name}`);
      location.hash = '#/users';
      return `User ${name} deleted`;
    })));
  async function refresh() {
    const [u, ps, ts, ls] = await Promise.all([
      get(path`/users/${name}`), get(path`/users/${name}/permissions`),
      get(path`/users/${name}/topic-permissions`), get(path`/user-limits/${name}`),
    ]);
    current = u;
    update(u);
    // The update form starts from the user's tags (once: typing is never overwritten).
    const tags = updateUser.querySelector('input[name=tags]');
    if (!tags.dataset.loaded) {
      tags.value = tagList(u.tags).join(', ');
      tags.dataset.loaded = 'true';
      tags.dataset.keep = 'true';
    }
    perms.update(ps.map((p) => ({ ...p, clear: () => del(path`/permissions/${p.vhost}/${name}`).then(refresh, (e) => flash(e.message, 'error')) })));
    topics.update(ts.map((p) => ({ ...p, clear: () => del(path`/topic-permissions/${p.vhost}/${name}/${p.exchange}`).then(refresh, (e) => flash(e.message, 'error')) })));
    limits.update(Object.entries((ls[0] && ls[0].value) || {}).map(([n, value]) => ({ name: n, value, refresh })));
  }
  return { refresh };
}

export function vhostsPage(main, ctx) {
  const list = new ListView({
    id: 'vhosts', resource: 'vhosts', keyOf: (v) => v.name,
    fields: ['name', 'description', 'tags', 'messages_ready', 'messages_unacknowledged', 'messages', 'message_stats', 'recv_oct_details', 'send_oct_details'],
    columns: [
      { label: 'Name', sort: 'name', cell: (v) => link(v.name, 'vhosts', v.name) },
      { label: 'Description', cell: (v) => v.description || '' },
      { label: 'Tags', cell: (v) => tagList(v.tags).join(', ') },
      { label: 'Ready', sort: 'messages_ready', cls: 'num', cell: (v) => num(v.messages_ready) },
      { label: 'Unacked', sort: 'messages_unacknowledged', cls: 'num', cell: (v) => num(v.messages_unacknowledged) },
      { label: 'Total', sort: 'messages', cls: 'num', cell: (v) => num(v.messages) },
      { label: 'Publish', cls: 'num', cell: (v) => rate((v.message_stats && v.message_stats.publish_details && v.message_stats.publish_details.rate) || 0) },
    ],
  });
  const add = form('add-vhost', 'Add virtual host', [
    field('Name', input('name', { required: true })),
    field('Description', input('description')),
    field('Tags', input('tags', { placeholder: 'comma-separated' })),
  ], async (v) => {
    await put(path`/vhosts/${v.name}`, { description: v.description, tags: v.tags });
    await Promise.all([list.refresh(), ctx.reloadVhosts()]);
    return `Virtual host ${v.name} added`;
  });
  main.append(adminNav('vhosts', ctx), h('h1', {}, 'Virtual hosts'), list.el, section('Add a new virtual host', add));
  return { refresh: () => list.refresh() };
}

export function vhostPage(main, ctx, name) {
  const [overview, update] = facts([
    ['Description', (v) => v.description || ''],
    ['Tags', (v) => tagList(v.tags).join(', ')],
    ['Ready', (v) => num(v.messages_ready)],
    ['Unacked', (v) => num(v.messages_unacknowledged)],
    ['Total', (v) => num(v.messages)],
  ]);
  const perms = permissionsTable('vhost-permissions', 'vhost');
  const limits = limitsTable('vhost-limits', path`/vhost-limits/${name}`);
  const setPerm = permissionForm('set-permission', [field('User', input('user', { required: true, 'data-keep': 'true' }))], async (v) => {
    await put(path`/permissions/${name}/${v.user}`, { configure: v.configure, write: v.write, read: v.read });
    await refresh();
    return `Permissions of ${v.user} in ${name} set`;
  });
  const setLimit = limitForm('set-vhost-limit', ['max-connections', 'max-queues'], path`/vhost-limits/${name}`, () => refresh());
  main.append(adminNav('vhosts', ctx), h('h1', {}, 'Virtual host ', h('b', {}, name)),
    section('Overview', overview),
    section('Permissions', perms.el, setPerm),
    section('Limits', limits.el, setLimit),
    section('Delete this virtual host', dangerButton('Delete', `Delete virtual host ${name} and everything in it?`, async () => {
      await del(path`/vhosts/${name}`);
      await ctx.reloadVhosts();
      location.hash = '#/vhosts';
      return `Virtual host ${name} deleted`;
    })));
  async function refresh() {
    const [v, ps, ls] = await Promise.all([get(path`/vhosts/${name}`), get(path`/vhosts/${name}/permissions`), get(path`/vhost-limits/${name}`)]);
    update(v);
    perms.update(ps.map((p) => ({ ...p, clear: () => del(path`/permissions/${name}/${p.user}`).then(refresh, (e) => flash(e.message, 'error')) })));
    limits.update(Object.entries((ls[0] && ls[0].value) || {}).map(([n, value]) => ({ name: n, value, refresh })));
  }
  return { refresh };
}

const POLICY_KEYS = [
  ['message-ttl', 'number'], ['expires', 'number'], ['max-length', 'number'], ['max-length-bytes', 'number'],
  ['overflow', 'string'], ['dead-letter-exchange', 'string'], ['dead-letter-routing-key', 'string'],
  ['max-priority', 'number'], ['queue-mode', 'string'], ['alternate-exchange', 'string'],
];

function policyPanel(ctx, kind, title, plural) {
  const table = new KeyedTable([
    { label: 'Virtual host', cell: (p) => p.vhost },
    { label: 'Name', cell: (p) => p.name },
    { label: 'Pattern', cell: (p) => p.pattern },
    { label: 'Apply to', cell: (p) => p['apply-to'] },
    { label: 'Definition', cell: (p) => args(p.definition) },
    { label: 'Priority', cls: 'num', cell: (p) => String(p.priority) },
    { label: '', cell: (p) => dangerButton('Delete', `Delete ${title.toLowerCase()} ${p.name}?`, async () => { await del(path`/${kind}/${p.vhost}/${p.name}`); await p.refresh(); return `Policy ${p.name} deleted`; }) },
  ], (p) => `${p.vhost}\n${p.name}`, { id: `${kind}-table`, empty: `No ${plural.toLowerCase()}` });
  const add = form(`add-${kind}`, `Add / update ${title.toLowerCase()}`, [
    field('Virtual host', vhostSelect(ctx)),
    field('Name', input('name', { required: true })),
    field('Pattern', input('pattern', { required: true, placeholder: 'regular expression, e.g. ^amq\\.' })),
    field('Apply to', select('apply-to', [['all', 'Exchanges and queues'], ['exchanges', 'Exchanges'], ['queues', 'Queues']], 'all')),
    field('Priority', input('priority', { type: 'number', value: '0', 'data-keep': 'true' })),
    field('Definition', argsEditor('definition', kind === 'policies' ? POLICY_KEYS : POLICY_KEYS.filter(([k]) => !k.startsWith('dead') && k !== 'alternate-exchange' && k !== 'queue-mode'))),
  ], async (v) => {
    await put(path`/${kind}/${v.vhost}/${v.name}`, { pattern: v.pattern, 'apply-to': v['apply-to'], priority: Number(v.priority) || 0, definition: v.definition });
    await refresh();
    return `${title} ${v.name} set`;
  });
  async function refresh() {
    const v = ctx.vhost();
    const ps = await get(v ? path`/${kind}/${v}` : `/${kind}`);
    table.update(ps.map((p) => ({ ...p, refresh })));
  }
  return { el: h('div', {}, section(plural, table.el), section(`Add / update ${title.toLowerCase()}`, add)), refresh };
}

export function policiesPage(main, ctx) {
  // Operator policies are administrators' only (the API refuses others).
  const panels = [policyPanel(ctx, 'policies', 'Policy', 'Policies')];
  if (ctx.isAdmin) panels.push(policyPanel(ctx, 'operator-policies', 'Operator policy', 'Operator policies'));
  main.append(adminNav('policies', ctx), h('h1', {}, 'Policies'), ...panels.map((p) => p.el));
  return { refresh: () => Promise.all(panels.map((p) => p.refresh())) };
}

// One kind of limits (of vhosts or of users): the table of all, with Clear buttons, and
// the set form.
function limitsPanel(ctx, who, names, refresh) {
  const [kind, label] = who === 'vhost' ? ['vhost-limits', 'Virtual host'] : ['user-limits', 'User'];
  const table = new KeyedTable([
    { label, cell: (l) => link(l[who], `${who}s`, l[who]) },
    { label: 'Limit', cell: (l) => l.name },
    { label: 'Value', cls: 'num', cell: (l) => num(l.value) },
    { label: '', cell: (l) => h('button', { type: 'button', class: 'small', onclick: () => del(path`/${kind}/${l[who]}/${l.name}`).then(refresh) }, 'Clear') },
  ], (l) => `${l[who]}\n${l.name}`, { id: `${kind}-table`, empty: `No ${label.toLowerCase()} limits` });
  const set = form(`set-${who}-limit`, 'Set limit', [
    field(label, who === 'vhost' ? vhostSelect(ctx) : input('user', { required: true })),
    field('Limit', select('limit', names, names[0])),
    field('Value', input('value', { type: 'number', required: true })),
  ], async (v) => {
    await put(path`/${kind}/${v[who]}/${v.limit}`, { value: Number(v.value) });
    await refresh();
    return `Limit ${v.limit} of ${v[who]} set`;
  });
  const update = (rows) => table.update(rows.flatMap((r) => Object.entries(r.value || {}).map(([name, value]) => ({ [who]: r[who], name, value }))));
  return { el: [table.el, set], update };
}

export function limitsPage(main, ctx) {
  const vhosts = limitsPanel(ctx, 'vhost', ['max-connections', 'max-queues'], () => refresh());
  const users = limitsPanel(ctx, 'user', ['max-connections', 'max-channels'], () => refresh());
  main.append(adminNav('limits', ctx), h('h1', {}, 'Limits'),
    section('Virtual host limits', vhosts.el),
    section('User limits', users.el));
  async function refresh() {
    const [vl, ul] = await Promise.all([get('/vhost-limits'), get('/user-limits')]);
    vhosts.update(vl);
    users.update(ul);
  }
  return { refresh };
}
