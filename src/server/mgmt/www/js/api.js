// The management API client: basic auth kept in sessionStorage, JSON in and out,
// RabbitMQ's error bodies turned into exceptions. The UI uses nothing but /api.

const KEY = 'warren.auth';

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.reason || body.error)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function credentials() {
  return sessionStorage.getItem(KEY);
}

function basic(user, password) {
  // UTF-8 safe base64 of "user:password".
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return 'Basic ' + btoa(bin);
}

export function logout() {
  sessionStorage.removeItem(KEY);
}

// Checks the credentials with GET /api/whoami; keeps them when they work.
export async function login(user, password) {
  const auth = basic(user, password);
  const who = await request('GET', '/whoami', undefined, auth);
  sessionStorage.setItem(KEY, auth);
  return who;
}

// One path segment, as the API takes it ("/" is %2F).
export const seg = (s) => encodeURIComponent(s);

// A path from segments: path`/queues/${vhost}/${name}` encodes the values.
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? seg(values[i]) : ''), '');
}

// `credentials: 'omit'` keeps the browser from answering the API's
// WWW-Authenticate challenge with its own login dialog.
export async function request(method, p, body, auth = credentials(), extra = {}) {
  const headers = { Accept: 'application/json', ...extra };
  if (auth) headers.Authorization = auth;
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const r = await fetch('/api' + p, init);
  const text = await r.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = { reason: text }; }
  }
  if (!r.ok) {
    if (r.status === 401 && auth && auth === credentials() && onUnauthorised) onUnauthorised(json);
    throw new ApiError(r.status, json);
  }
  return json;
}

let onUnauthorised = null;
// What to do when the stored credentials stop working (user deleted, password changed).
export function whenUnauthorised(f) { onUnauthorised = f; }

export const get = (p) => request('GET', p);
export const put = (p, body = {}) => request('PUT', p, body);
export const post = (p, body = {}) => request('POST', p, body);
export const del = (p, body) => request('DELETE', p, body);

// A listing query string: pagination, sorting, name filter and columns.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}
