// The UI's shell: login, the header, hash routing (#/queues, #/queues/%2F/name, ...),
// the alarm banner and the refresh loop. Each page is a function (main, ctx, ...route
// parameters) that builds its DOM once and returns { refresh }: the loop calls refresh
// every interval, and refresh patches what is on the page in place.

import * as api from './api.js';
import { h, clear, setText, flash } from './dom.js';
import { bytes } from './fmt.js';
import { overviewPage } from './pages/overview.js';
import { connectionsPage, connectionPage, channelsPage, channelPage } from './pages/connections.js';
import { exchangesPage, exchangePage } from './pages/exchanges.js';
import { queuesPage, queuePage } from './pages/queues.js';
import { usersPage, userPage, vhostsPage, vhostPage, policiesPage, limitsPage } from './pages/admin.js';

const ROUTES = [
  [[], 'overview', overviewPage],
  [['connections'], 'connections', connectionsPage],
  [['connections', '*'], 'connections', connectionPage],
  [['channels'], 'channels', channelsPage],
  [['channels', '*'], 'channels', channelPage],
  [['exchanges'], 'exchanges', exchangesPage],
  [['exchanges', '*', '*'], 'exchanges', exchangePage],
  [['queues'], 'queues', queuesPage],
  [['queues', '*', '*'], 'queues', queuePage],
  [['admin'], 'admin', usersPage, true],
  [['users'], 'admin', usersPage, true],
  [['users', '*'], 'admin', userPage, true],
  [['vhosts'], 'admin', vhostsPage, true],
  [['vhosts', '*'], 'admin', vhostPage, true],
  [['policies'], 'admin', policiesPage, 'policymaker'],
  [['limits'], 'admin', limitsPage, true],
];

const main = document.getElementById('main');
const ctx = {
  user: null,
  tags: [],
  isAdmin: false,
  isMonitor: false,
  isPolicymaker: false,
  // The vhost chosen in the header ('' for all).
  vhost: () => sessionStorage.getItem('warren.vhost') || '',
  vhosts: [],
  overview: null,
};

let current = null;
let timer = null;
let generation = 0;

function routeOf(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '').map(decodeURIComponent);
  for (const [pattern, tab, page, admin] of ROUTES) {
    if (pattern.length === parts.length && pattern.every((p, i) => p === '*' || p === parts[i])) {
      return { tab, page, admin, args: parts.filter((_, i) => pattern[i] === '*') };
    }
  }
  return null;
}

function showLogin(message) {
  clearTimeout(timer);
  // Logging in again must not land on #/logout.
  if (location.hash === '#/logout') history.replaceState(null, '', '#/');
  current = null;
  for (const id of ['header', 'tabs', 'alarms']) document.getElementById(id).hidden = true;
  const user = h('input', { name: 'username', id: 'login-username', autocomplete: 'username', required: true, autofocus: true });
  const pass = h('input', { name: 'password', id: 'login-password', type: 'password', autocomplete: 'current-password' });
  const error = h('p', { class: 'form-error', id: 'login-error', role: 'alert' }, message || '');
  const button = h('button', { type: 'submit', id: 'login-submit' }, 'Log in');
  const form = h('form', { id: 'login-form', class: 'login' },
    h('h1', {}, h('span', { class: 'logo' }, 'Warren'), ' management'),
    h('label', { class: 'field' }, h('span', { class: 'label' }, 'Username'), user),
    h('label', { class: 'field' }, h('span', { class: 'label' }, 'Password'), pass),
    h('div', { class: 'actions' }, button), error);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    error.textContent = '';
    try {
      await api.login(user.value, pass.value);
      await start();
    } catch (err) {
      error.textContent = err.status === 401 ? `Login failed: ${err.message}` : `Cannot log in: ${err.message}`;
      button.disabled = false;
    }
  });
  clear(main).append(form);
  user.focus();
}

async function start() {
  let who;
  try {
    who = await api.get('/whoami');
  } catch (e) {
    api.logout();
    showLogin(e.status === 401 ? '' : e.message);
    return;
  }
  const tags = Array.isArray(who.tags) ? who.tags : String(who.tags || '').split(',').filter(Boolean);
  Object.assign(ctx, {
    user: who.name,
    tags,
    isAdmin: tags.includes('administrator'),
    isMonitor: tags.includes('administrator') || tags.includes('monitoring'),
    isPolicymaker: tags.includes('administrator') || tags.includes('policymaker'),
  });
  // Policymakers see the Admin tab too, with the policies only (as in RabbitMQ).
  document.body.classList.toggle('admin-tab', ctx.isAdmin || ctx.isPolicymaker);
  document.querySelector('#tabs a[data-tab=admin]').href = ctx.isAdmin ? '#/admin' : '#/policies';
  setText(document.getElementById('user-name'), who.name);
  setText(document.getElementById('user-tags'), tags.length ? `(${tags.join(', ')})` : '');
  for (const id of ['header', 'tabs']) document.getElementById(id).hidden = false;
  await loadVhosts();
  await navigate();
}

async function loadVhosts() {
  try {
    const list = await api.get('/vhosts?columns=name');
    ctx.vhosts = list.map((v) => v.name);
  } catch {
    ctx.vhosts = [];
  }
  const sel = document.getElementById('vhost-select');
  const chosen = ctx.vhost();
  const sig = ctx.vhosts.join('\n');
  if (sel.dataset.sig !== sig) {
    sel.dataset.sig = sig;
    sel.replaceChildren(h('option', { value: '' }, 'All'), ...ctx.vhosts.map((v) => h('option', { value: v }, v)));
  }
  if (chosen && !ctx.vhosts.includes(chosen)) sessionStorage.removeItem('warren.vhost');
  sel.value = ctx.vhost();
}
ctx.reloadVhosts = loadVhosts;

async function navigate() {
  if (!api.credentials()) return showLogin();
  if (location.hash === '#/logout') {
    api.logout();
    history.replaceState(null, '', '#/');
    return showLogin('Logged out.');
  }
  const route = routeOf(location.hash);
  const gen = ++generation;
  clearTimeout(timer);
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', route && a.dataset.tab === route.tab);
  clear(main);
  if (!route) {
    main.append(h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Overview')));
    current = null;
    return;
  }
  if ((route.admin === true && !ctx.isAdmin) || (route.admin === 'policymaker' && !ctx.isPolicymaker)) {
    main.append(h('h1', {}, 'Admin'), h('p', {}, 'Only administrators can see this page.'));
    current = null;
    return;
  }
  current = route.page(main, ctx, ...route.args);
  await tick(gen);
}

// One refresh of the current page and the banner, then the next one scheduled.
async function tick(gen) {
  if (gen !== generation) return;
  clearTimeout(timer);
  await Promise.all([
    current && current.refresh ? current.refresh().catch((e) => showPageError(e)) : null,
    refreshHeader().catch(() => {}),
  ]);
  if (gen !== generation) return;
  const every = Number(document.getElementById('refresh-interval').value);
  if (every > 0) timer = setTimeout(() => tick(gen), every * 1000);
}

function showPageError(e) {
  if (e.status === 404) {
    clear(main).append(h('h1', {}, 'Not found'), h('p', { class: 'form-error' }, 'This object does not exist (any more).'));
    current = null;
  } else {
    flash(e.message, 'error');
  }
}

// The header's cluster and node, and the alarm banner.
async function refreshHeader() {
  const o = await api.get('/overview');
  ctx.overview = o;
  setText(document.getElementById('cluster-name'), o.cluster_name);
  setText(document.getElementById('node-name'), o.node);
  setText(document.getElementById('product-version'), `${o.product_version} (RabbitMQ ${o.rabbitmq_version} compatible)`);
  const banner = document.getElementById('alarms');
  if (!ctx.isMonitor) {
    banner.hidden = true;
    return;
  }
  const nodes = await api.get('/nodes');
  const alarms = [];
  for (const n of nodes) {
    if (n.mem_alarm) alarms.push(`Memory alarm on ${n.name}: ${bytes(n.mem_used)} used, limit ${bytes(n.mem_limit)}`);
    if (n.disk_free_alarm) alarms.push(`Disk alarm on ${n.name}: ${bytes(n.disk_free)} free, limit ${bytes(n.disk_free_limit)}`);
  }
  if (!alarms.length) {
    banner.hidden = true;
    return;
  }
  const conns = await api.get('/connections?columns=name,state');
  const blocked = conns.filter((c) => c.state === 'blocked' || c.state === 'blocking').length;
  const text = `⚠ Resource alarm: publishers are blocked. ${alarms.join('. ')}. ` +
    `${blocked} connection${blocked === 1 ? '' : 's'} blocked or blocking.`;
  setText(banner, text);
  banner.hidden = false;
}

// Re-runs the current page's refresh now (after a form changed something).
ctx.refreshNow = () => tick(generation);

api.whenUnauthorised((body) => {
  // A failed login (not a missing tag): the stored credentials no longer work.
  if (!body || body.error !== 'not_authorised') {
    api.logout();
    showLogin('Your session ended: log in again.');
  }
});

document.getElementById('refresh-interval').addEventListener('change', (e) => {
  localStorage.setItem('warren.refresh', e.target.value);
  ctx.refreshNow();
});
const savedInterval = localStorage.getItem('warren.refresh');
if (savedInterval !== null) document.getElementById('refresh-interval').value = savedInterval;
document.getElementById('vhost-select').addEventListener('change', (e) => {
  sessionStorage.setItem('warren.vhost', e.target.value);
  navigate();
});
window.addEventListener('hashchange', () => navigate());
start();
