// The admin JSON API (docs/admin-api.md), the console's only source of data.
// The token lives in sessionStorage (gone when the tab closes) and goes out
// only in the Authorization header; the console sets no cookie.

const KEY = 'walhook.admin_token';
const BASE = '/v1/admin';

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}
export function setToken(t) {
  sessionStorage.setItem(KEY, t);
}
export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

// Called with an ApiError whose status is 401 (the token expired or the
// secret changed): the app goes back to the login screen.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

// One request; the parsed JSON answer, or an ApiError with the server's
// "error" message.
export async function call(method, path, body, tokenOverride) {
  const headers = { Accept: 'application/json' };
  const t = tokenOverride ?? token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(BASE + path, init);
  } catch {
    throw new ApiError(0, 'walhook does not answer (is it running?)');
  }
  const raw = await res.text();
  let data = null;
  try {
    data = raw ? JSON.parse(raw) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const message = data && typeof data.error === 'string' ? data.error : `HTTP ${res.status}`;
    const err = new ApiError(res.status, message, data && data.field);
    if (res.status === 401 && tokenOverride === undefined) onUnauthorized(err);
    throw err;
  }
  return data;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

const enc = encodeURIComponent;

export const api = {
  nodes: () => call('GET', '/nodes'),
  triggers: () => call('GET', '/triggers'),
  trigger: (name) => call('GET', `/triggers/${enc(name)}`),
  createTrigger: (t) => call('POST', '/triggers', t),
  updateTrigger: (name, t) => call('PATCH', `/triggers/${enc(name)}`, t),
  setEnabled: (name, on) => call('POST', `/triggers/${enc(name)}/${on ? 'enable' : 'disable'}`),
  deleteTrigger: (name) => call('DELETE', `/triggers/${enc(name)}`),
  validate: (what) => call('POST', '/validate', what),
  tables: () => call('GET', '/tables'),
  events: (filters) => call('GET', `/events${query(filters)}`),
  event: (id) => call('GET', `/events/${enc(id)}`),
  redeliver: (id) => call('POST', `/events/${enc(id)}/redeliver`),
  cancel: (id) => call('POST', `/events/${enc(id)}/cancel`),
  bulk: (body) => call('POST', '/events/bulk', body),
  queue: (body) => call('POST', '/queue', body),
  backfills: () => call('GET', '/backfills'),
  startBackfill: (body) => call('POST', '/backfills', body),
  cancelBackfill: (id) => call('POST', `/backfills/${enc(id)}/cancel`),
};
