// The walhook console (SPEC §12): one page, hash routes, every value from the
// admin API rendered as text (dom.js builds the page; nothing is parsed as
// HTML).

import { api, ApiError, call, forgetToken, setToken, setUnauthorizedHandler, token } from './api.js';
import { drawChart, formatRate } from './chart.js';
import { append, clear, h, indentJson, pretty, replace, text, when } from './dom.js';

const main = () => document.getElementById('main');
const TYPES = ['DB_INSERT', 'DB_UPDATE', 'DB_DELETE', 'FILE_CREATE', 'FILE_DELETE'];
const STATUSES = ['staged', 'processed', 'failed', 'cancel'];
const PAGE = 50;

// ---------------------------------------------------------------- helpers

function errorText(e) {
  if (e instanceof ApiError) return e.message;
  return String(e && e.message ? e.message : e);
}

function notice(kind, message) {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
}

function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'label' }, label), input,
    hint ? h('span', { class: 'hint' }, hint) : null);
}

function table(headers, rows, test) {
  return h('div', { class: 'table-wrap' },
    h('table', { dataset: { test } },
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
      h('tbody', {}, rows)));
}

function badge(status) {
  return h('span', { class: `badge ${status || ''}`, dataset: { test: 'status' } }, text(status));
}

// Runs `fn` now and every `ms` until the returned stop function is called;
// a run that is still going is not started twice.
function every(ms, fn) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      await fn();
    } finally {
      if (!stopped) timer = setTimeout(tick, ms);
    }
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function debounce(ms, fn) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

// A datetime-local value as an ISO timestamp ('' stays '').
function isoOf(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

// Where a parse error points: the line it names with a caret under the
// column. `err` has line and column (1-based), or offset (a byte offset).
function errorAt(source, err) {
  const box = h('div', { class: 'parse-error', dataset: { test: 'parse-error' } });
  append(box, h('div', {}, text(err.message)));
  let line = Number(err.line);
  let column = Number(err.column);
  if (!(line > 0 && column > 0) && Number.isInteger(err.offset) && typeof source === 'string') {
    // A byte offset into UTF-8: count the characters before it.
    const bytes = new TextEncoder().encode(source).slice(0, err.offset);
    const before = new TextDecoder().decode(bytes);
    const lines = before.split('\n');
    line = lines.length;
    column = [...lines[lines.length - 1]].length + 1;
  }
  if (line > 0 && column > 0 && typeof source === 'string') {
    const at = source.split('\n')[line - 1];
    if (at !== undefined) {
      const pad = ' '.repeat(Math.max(0, Math.min(column - 1, [...at].length)));
      append(box, h('pre', { class: 'caret' }, `${at}\n${pad}^`));
      append(box, h('div', { class: 'hint', dataset: { test: 'error-position' } }, `line ${line}, column ${column}`));
    }
  }
  return box;
}

// An error of the validate call for `key` (condition, request_transform…):
// shown under the template its field names when that is a string.
function templateError(key, value, e) {
  let source = value;
  const path = String(e.field || key).split('.').slice(1);
  if (String(e.field || '').startsWith(`${key}.`)) {
    for (const p of path) source = source && typeof source === 'object' ? source[p] : undefined;
    // A member whose name holds dots (a header name): try the rest joined.
    if (source === undefined && value && typeof value === 'object' && path.length > 1) {
      source = value[path[0]] && value[path[0]][path.slice(1).join('.')];
    }
  }
  const where = e.field && e.field !== key ? `${e.field}: ` : '';
  const message = String(e.message || '').startsWith(`${e.field}:`) ? e.message : `${where}${text(e.message)}`;
  return errorAt(typeof source === 'string' ? source : null, { ...e, message });
}

// ---------------------------------------------------------------- login

function loginScreen(root, params) {
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off',
    placeholder: 'eyJhbGciOiJIUzI1NiIs…', spellcheck: false });
  const message = h('div', { id: 'login-message' });
  if (params.get('expired')) append(message, notice('error', 'Your token is no longer accepted. Log in again.'));
  const button = h('button', { type: 'submit', id: 'login' }, 'Log in');
  const form = h('form', { class: 'card narrow', id: 'login-form' },
    h('h1', {}, 'Log in'),
    h('p', {}, 'Paste an admin token. Make one on the server with ',
      h('code', {}, 'walhook token --role admin'), '.'),
    field('Admin token', input),
    button, message);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    clear(message);
    if (!t) {
      append(message, notice('error', 'Paste a token first.'));
      return;
    }
    button.disabled = true;
    try {
      await call('GET', '/nodes', undefined, t);
      setToken(t);
      location.hash = '#/overview';
    } catch (e) {
      let why = errorText(e);
      if (e instanceof ApiError && e.status === 401) why = `This token was refused: ${e.message}`;
      else if (e instanceof ApiError && e.status === 403) why = `This token is not an admin token: ${e.message}`;
      append(message, notice('error', why));
    } finally {
      button.disabled = false;
    }
  });
  replace(root, form);
  input.focus();
}

// ---------------------------------------------------------------- overview

const rates = { events: [], deliveries: [] };
const SPAN = 5 * 60 * 1000;

function overviewScreen(root) {
  const canvas = h('canvas', { id: 'rates-chart', class: 'chart', width: 800, height: 200 });
  const legend = h('div', { class: 'legend' },
    h('span', { class: 'key events' }, 'events/s'), h('span', { class: 'key deliveries' }, 'deliveries/s'));
  const nodes = h('div', { id: 'nodes' });
  const message = h('div');
  replace(root,
    h('h1', {}, 'Overview'),
    message,
    h('section', { class: 'card' }, h('h2', {}, 'Rates, last 5 minutes'), legend, canvas),
    h('section', { class: 'card' }, h('h2', {}, 'Nodes'), nodes));
  const draw = () => drawChart(canvas, [
    { color: '#2563eb', points: rates.events },
    { color: '#16a34a', points: rates.deliveries },
  ], SPAN);
  window.addEventListener('resize', draw);
  const stop = every(1000, async () => {
    let data;
    try {
      data = await api.nodes();
      clear(message);
    } catch (e) {
      replace(message, notice('error', errorText(e)));
      return;
    }
    const list = data.nodes || [];
    const now = Date.now();
    let ev = 0;
    let dl = 0;
    for (const n of list) {
      ev += Number(n.events_per_s) || 0;
      dl += Number(n.deliveries_per_s) || 0;
    }
    rates.events.push([now, ev]);
    rates.deliveries.push([now, dl]);
    for (const s of [rates.events, rates.deliveries]) {
      while (s.length && s[0][0] < now - SPAN) s.shift();
    }
    draw();
    replace(nodes, list.length === 0
      ? notice('info', 'No node has reported in the last 10 seconds.')
      : table(['Node', 'Role', 'Slot', 'Confirmed LSN', 'Lag', 'Events/s', 'Deliveries/s', 'In flight', 'Updated'],
        list.map((n) => h('tr', {},
          h('td', {}, text(n.node_id)), h('td', {}, text(n.role)), h('td', {}, text(n.slot_name)),
          h('td', {}, text(n.confirmed_lsn)), h('td', { class: 'num' }, bytes(n.lag_bytes)),
          h('td', { class: 'num' }, formatRate(Number(n.events_per_s) || 0)),
          h('td', { class: 'num' }, formatRate(Number(n.deliveries_per_s) || 0)),
          h('td', { class: 'num' }, text(n.in_flight)), h('td', {}, when(n.updated_at)))), 'nodes'));
  });
  return () => {
    stop();
    window.removeEventListener('resize', draw);
  };
}

function bytes(n) {
  if (n === null || n === undefined) return '';
  const v = Number(n);
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(1)} KiB`;
  return `${(v / 1024 / 1024).toFixed(1)} MiB`;
}

// ---------------------------------------------------------------- triggers

function triggersScreen(root) {
  const search = h('input', { type: 'search', id: 'trigger-search', placeholder: 'Search name, type, table, URL' });
  const list = h('div', { id: 'trigger-list' });
  const message = h('div');
  let triggers = [];
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const shown = triggers.filter((t) => !q || [t.name, t.type, t.table_name, t.url]
      .some((v) => typeof v === 'string' && v.toLowerCase().includes(q)));
    if (shown.length === 0) {
      replace(list, notice('info', triggers.length ? 'No trigger matches.' : 'No triggers yet.'));
      return;
    }
    replace(list, table(['Name', 'Type', 'Table', 'Enabled', 'Active', 'Staged', 'Processed', 'Failed', 'Last error', ''],
      shown.map((t) => {
        const s = t.status || t;
        const sw = h('input', { type: 'checkbox', class: 'switch', checked: !!t.enabled,
          'aria-label': `enabled ${t.name}`, dataset: { test: `enable-${t.name}` } });
        sw.addEventListener('change', async () => {
          sw.disabled = true;
          try {
            await api.setEnabled(t.name, sw.checked);
            t.enabled = sw.checked;
          } catch (e) {
            sw.checked = !sw.checked;
            replace(message, notice('error', `${t.name}: ${errorText(e)}`));
          } finally {
            sw.disabled = false;
          }
        });
        return h('tr', { dataset: { trigger: t.name } },
          h('td', {}, h('a', { href: `#/triggers/edit/${encodeURIComponent(t.name)}` }, text(t.name))),
          h('td', {}, text(t.type)), h('td', {}, text(t.table_name)), h('td', {}, sw),
          h('td', {}, s.active ? 'yes' : 'no'),
          h('td', { class: 'num' }, text(s.staged)), h('td', { class: 'num' }, text(s.processed)),
          h('td', { class: 'num' }, text(s.failed)),
          h('td', { class: 'error-text' }, text(s.last_error || s.last_delivery_error)),
          h('td', {}, h('a', { href: `#/events?trigger=${encodeURIComponent(t.name)}` }, 'events')));
      }), 'triggers'));
  };
  search.addEventListener('input', render);
  replace(root,
    h('div', { class: 'title-row' }, h('h1', {}, 'Triggers'),
      h('a', { class: 'button', href: '#/triggers/new', id: 'new-trigger' }, 'New trigger')),
    message, search, list);
  return every(5000, async () => {
    try {
      triggers = (await api.triggers()).triggers || [];
      render();
    } catch (e) {
      replace(message, notice('error', errorText(e)));
    }
  });
}

function triggerForm(root, name) {
  const editing = name !== undefined;
  const message = h('div', { id: 'form-message' });
  replace(root, h('h1', {}, editing ? `Trigger ${name}` : 'New trigger'), message,
    h('p', { class: 'muted' }, 'Loading…'));
  let stopped = false;
  (async () => {
    let t = { type: 'DB_INSERT', retries: 3, timeout_ms: 5000, retry_interval_ms: 5000,
      ordered: false, enabled: true, headers: {} };
    let tables = [];
    try {
      const [tt, catalog] = await Promise.all([
        editing ? api.trigger(name) : Promise.resolve(null),
        api.tables().catch(() => ({ tables: [] })),
      ]);
      if (tt) t = tt.trigger || tt;
      tables = catalog.tables || [];
    } catch (e) {
      replace(root, h('h1', {}, `Trigger ${name}`), notice('error', errorText(e)));
      return;
    }
    if (!stopped) buildTriggerForm(root, t, tables, editing, message);
  })();
  return () => {
    stopped = true;
  };
}

function tableName(tb) {
  return tb.schema && tb.schema !== 'public' ? `${tb.schema}.${tb.name}` : tb.name;
}

// `public.orders` and `orders` name one table.
function sameTable(a, b) {
  const canon = (x) => (typeof x === 'string' && x.startsWith('public.') ? x.slice(7) : x);
  return canon(a) === canon(b);
}

function buildTriggerForm(root, t, tables, editing, message) {
  const nameIn = h('input', { id: 'f-name', value: t.name || '', readOnly: editing, required: true,
    placeholder: 'orders-to-search', autocomplete: 'off' });
  const custom = t.type && !TYPES.includes(t.type);
  const typeSel = h('select', { id: 'f-type' },
    TYPES.map((x) => h('option', { value: x, selected: x === t.type }, x)),
    h('option', { value: 'custom', selected: custom }, 'custom event type…'));
  const customIn = h('input', { id: 'f-custom-type', value: custom ? t.type : '', placeholder: 'ORDER_SHIPPED' });
  const tableSel = h('select', { id: 'f-table' },
    h('option', { value: '' }, '(every table its owner may read)'),
    tables.map((tb) => h('option', { value: tableName(tb), selected: sameTable(tableName(tb), t.table_name) }, tableName(tb))));
  if (t.table_name && !tables.some((tb) => sameTable(tableName(tb), t.table_name))) {
    append(tableSel, h('option', { value: t.table_name, selected: true }, `${t.table_name} (not in the catalog)`));
  }
  const columnsBox = h('div', { class: 'checks', id: 'f-columns' });
  const chosen = new Set(t.columns || []);
  const renderColumns = () => {
    const tb = tables.find((x) => tableName(x) === tableSel.value);
    const cols = tb ? (tb.columns || []).map((c) => (typeof c === 'string' ? c : c.name)) : [];
    for (const c of chosen) if (!cols.includes(c)) cols.push(c);
    replace(columnsBox, cols.length === 0 ? h('span', { class: 'muted' }, 'Pick a table first.') : cols.map((c) => {
      const box = h('input', { type: 'checkbox', checked: chosen.has(c), value: c });
      box.addEventListener('change', () => (box.checked ? chosen.add(c) : chosen.delete(c)));
      return h('label', { class: 'check' }, box, c);
    }));
    renderColumnHints();
  };
  const columnHint = h('div', { class: 'hint' });
  const renderColumnHints = () => {
    const tb = tables.find((x) => tableName(x) === tableSel.value);
    replace(columnHint, tb ? `Columns of ${tableName(tb)}: ${(tb.columns || []).map((c) => (typeof c === 'string' ? c : `${c.name} ${c.type || ''}`.trim())).join(', ')}` : '');
  };
  tableSel.addEventListener('change', renderColumns);

  const condIn = h('textarea', { id: 'f-condition', rows: 2, value: t.condition || '', spellcheck: false,
    placeholder: "new.total > 100 AND new.status = 'paid'" });
  const condCheck = h('div', { class: 'check-result', id: 'condition-check' });
  const prefixIn = h('input', { id: 'f-path-prefix', value: t.path_prefix || '', placeholder: '/uploads' });
  const urlIn = h('input', { id: 'f-url', type: 'url', value: t.url || '', required: true, placeholder: 'https://example.com/hook' });

  const headerRows = h('div', { id: 'f-headers', class: 'headers' });
  const addHeader = (k = '', v = '') => {
    const key = h('input', { class: 'h-key', value: k, placeholder: 'X-Api-Key', 'aria-label': 'header name' });
    const val = h('input', { class: 'h-value', type: 'password', value: v, autocomplete: 'off', 'aria-label': 'header value' });
    const show = h('button', { type: 'button', class: 'small' }, 'show');
    show.addEventListener('click', () => {
      val.type = val.type === 'password' ? 'text' : 'password';
      show.textContent = val.type === 'password' ? 'show' : 'hide';
    });
    const row = h('div', { class: 'header-row' }, key, val, show);
    const del = h('button', { type: 'button', class: 'small' }, 'remove');
    del.addEventListener('click', () => row.remove());
    append(row, del);
    append(headerRows, row);
  };
  for (const [k, v] of Object.entries(t.headers || {})) addHeader(k, text(v));
  const addHeaderBtn = h('button', { type: 'button', class: 'small', id: 'add-header' }, 'Add header');
  addHeaderBtn.addEventListener('click', () => addHeader());

  const retriesIn = h('input', { id: 'f-retries', type: 'number', min: 0, value: t.retries ?? 3 });
  const timeoutIn = h('input', { id: 'f-timeout', type: 'number', min: 1, value: t.timeout_ms ?? 5000 });
  const intervalIn = h('input', { id: 'f-interval', type: 'number', min: 0, value: t.retry_interval_ms ?? 5000 });
  const orderedIn = h('input', { id: 'f-ordered', type: 'checkbox', checked: !!t.ordered });
  const enabledIn = h('input', { id: 'f-enabled', type: 'checkbox', checked: t.enabled !== false });
  const jsonText = (v) => (v === null || v === undefined ? '' : pretty(v));
  const transformIn = h('textarea', { id: 'f-transform', rows: 6, spellcheck: false, value: jsonText(t.request_transform),
    placeholder: '{"method": "PUT", "url": "{{$base_url}}/{{$body.data.doc.id}}", "body": {"title": "{{$body.data.doc.title}}"}}' });
  const transformCheck = h('div', { class: 'check-result', id: 'transform-check' });
  const claimsIn = h('textarea', { id: 'f-claims', rows: 3, spellcheck: false, value: jsonText(t.token_claims),
    placeholder: '{"tenant": "{{$body.data.doc.tenant_id}}"}' });
  const claimsCheck = h('div', { class: 'check-result', id: 'claims-check' });

  // Checked as you type, by the server: the same parsers walhook runs.
  const typeNow = () => (typeSel.value === 'custom' ? customIn.value.trim() : typeSel.value);
  const check = (input, out, key) => debounce(250, async () => {
    const source = input.value;
    if (!source.trim()) {
      replace(out, '');
      return;
    }
    let value = source;
    if (key !== 'condition') {
      try {
        value = JSON.parse(source);
      } catch (e) {
        replace(out, errorAt(source, { message: `not JSON: ${e.message}` }));
        return;
      }
    }
    try {
      const r = await api.validate({ type: typeNow(), [key]: value });
      if (input.value !== source) return; // typed on meanwhile
      const mine = (r.errors || []).filter((e) => e.field === key || String(e.field).startsWith(`${key}.`));
      if (mine.length === 0) replace(out, h('span', { class: 'ok' }, '✓ parses'));
      else replace(out, mine.map((e) => templateError(key, value, e)));
    } catch (e) {
      if (input.value === source) replace(out, notice('error', errorText(e)));
    }
  });
  const checkCondition = check(condIn, condCheck, 'condition');
  const checkTransform = check(transformIn, transformCheck, 'request_transform');
  const checkClaims = check(claimsIn, claimsCheck, 'token_claims');
  condIn.addEventListener('input', checkCondition);
  transformIn.addEventListener('input', checkTransform);
  claimsIn.addEventListener('input', checkClaims);
  typeSel.addEventListener('change', () => condIn.value && checkCondition());

  // Preview: the request the transform makes for a recent event of this trigger.
  const previewOut = h('div', { id: 'preview' });
  const eventIn = h('input', { id: 'f-preview-event', inputMode: 'numeric', placeholder: 'latest of this trigger',
    'aria-label': 'event id for the preview' });
  const previewBtn = h('button', { type: 'button', id: 'preview-button' }, 'Preview transform');
  previewBtn.addEventListener('click', async () => {
    replace(previewOut, h('p', { class: 'muted' }, 'Rendering…'));
    try {
      let id = eventIn.value.trim();
      if (!id) {
        const recent = nameIn.value.trim() ? await api.events({ trigger: nameIn.value.trim(), limit: 1 }) : { events: [] };
        if (!recent.events || recent.events.length === 0) {
          replace(previewOut, notice('info', 'This trigger has no event yet: give an event id to preview against.'));
          return;
        }
        id = recent.events[0].id;
      }
      const body = { type: typeNow(), event_id: id };
      if (transformIn.value.trim()) body.request_transform = JSON.parse(transformIn.value);
      if (claimsIn.value.trim()) body.token_claims = JSON.parse(claimsIn.value);
      const r = await api.validate(body);
      if (r.errors && r.errors.length) {
        replace(previewOut, r.errors.map((e) => templateError('request_transform', body.request_transform, e)));
        return;
      }
      replace(previewOut, h('p', { class: 'muted' }, `Event ${id}:`), requestView(r.preview));
    } catch (e) {
      replace(previewOut, notice('error', errorText(e)));
    }
  });

  const syncType = () => {
    const ty = typeSel.value;
    const isDb = ty.startsWith('DB_');
    customIn.closest('label').hidden = ty !== 'custom';
    tableSel.closest('label').hidden = !isDb;
    columnsBox.closest('.field').hidden = ty !== 'DB_UPDATE';
    prefixIn.closest('label').hidden = !ty.startsWith('FILE_');
  };
  typeSel.addEventListener('change', syncType);

  const save = h('button', { type: 'submit', id: 'save-trigger' }, editing ? 'Save' : 'Create trigger');
  const form = h('form', { class: 'card form', id: 'trigger-form' },
    h('div', { class: 'grid2' },
      field('Name', nameIn, 'lower case letters, digits, - and _'),
      field('Type', typeSel)),
    field('Custom event type', customIn),
    h('div', { class: 'grid2' },
      field('Table', tableSel, columnHint),
      h('div', { class: 'field' }, h('span', { class: 'label' }, 'Columns (DB_UPDATE: fire only when one changed)'), columnsBox)),
    field('Path prefix', prefixIn),
    field('Condition', condIn, 'SQL over new.col, old.col (DB) or payload.a.b (custom, file)'), condCheck,
    field('Webhook URL', urlIn),
    h('div', { class: 'field' }, h('span', { class: 'label' }, 'Headers (values hidden)'), headerRows, addHeaderBtn),
    h('div', { class: 'grid3' },
      field('Retries', retriesIn), field('Timeout (ms)', timeoutIn), field('First retry after (ms)', intervalIn)),
    h('div', { class: 'grid2' },
      h('label', { class: 'check' }, orderedIn, 'ordered (one at a time per primary key)'),
      h('label', { class: 'check' }, enabledIn, 'enabled')),
    field('Request transform (Kriti)', transformIn), transformCheck,
    field('Token claims (Kriti)', claimsIn), claimsCheck,
    h('div', { class: 'preview-row' }, previewBtn, eventIn),
    h('div', { class: 'actions' }, save,
      editing ? h('button', { type: 'button', id: 'delete-trigger', class: 'danger',
        onclick: () => confirmInline(form, `Delete trigger ${t.name}? Its staged events become cancel.`, async () => {
          try {
            await api.deleteTrigger(t.name);
            location.hash = '#/triggers';
          } catch (e) {
            replace(message, notice('error', errorText(e)));
          }
        }) }, 'Delete') : null),
    previewOut);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(message);
    let body;
    try {
      const headers = {};
      for (const row of headerRows.querySelectorAll('.header-row')) {
        const k = row.querySelector('.h-key').value.trim();
        if (k) headers[k] = row.querySelector('.h-value').value;
      }
      const ty = typeNow();
      body = {
        name: nameIn.value.trim(), type: ty,
        table_name: ty.startsWith('DB_') && tableSel.value ? tableSel.value : null,
        columns: ty === 'DB_UPDATE' && chosen.size ? [...chosen] : null,
        condition: condIn.value.trim() || null,
        path_prefix: ty.startsWith('FILE_') && prefixIn.value.trim() ? prefixIn.value.trim() : null,
        url: urlIn.value.trim(),
        headers: Object.keys(headers).length ? headers : null,
        retries: Number(retriesIn.value), timeout_ms: Number(timeoutIn.value),
        retry_interval_ms: Number(intervalIn.value),
        ordered: orderedIn.checked, enabled: enabledIn.checked,
        request_transform: transformIn.value.trim() ? JSON.parse(transformIn.value) : null,
        token_claims: claimsIn.value.trim() ? JSON.parse(claimsIn.value) : null,
      };
      // A new trigger gets the defaults for what is left empty; an edit
      // clears with null. The transform columns only where the schema has them.
      for (const k of Object.keys(body)) {
        const known = k in t || !['request_transform', 'token_claims'].includes(k);
        if (body[k] === null && (!editing || !known)) delete body[k];
      }
      if (editing) delete body.name;
    } catch (e) {
      append(message, notice('error', `A transform or claims field is not JSON: ${e.message}`));
      return;
    }
    save.disabled = true;
    try {
      if (editing) await api.updateTrigger(t.name, body);
      else await api.createTrigger(body);
      location.hash = '#/triggers';
    } catch (e) {
      append(message, notice('error', errorText(e)));
    } finally {
      save.disabled = false;
    }
  });
  replace(root, h('h1', {}, editing ? `Trigger ${t.name}` : 'New trigger'), message, form);
  renderColumns();
  syncType();
  if (condIn.value) checkCondition();
  if (transformIn.value) checkTransform();
  if (claimsIn.value) checkClaims();
}

// A confirmation row under `where`; `go` runs on "Yes".
function confirmInline(where, question, go) {
  const old = where.querySelector('.confirm');
  if (old) old.remove();
  const yes = h('button', { type: 'button', class: 'danger', id: 'confirm-yes' }, 'Yes');
  const no = h('button', { type: 'button', id: 'confirm-no' }, 'No');
  const box = h('div', { class: 'confirm', role: 'alertdialog' }, h('span', {}, question), yes, no);
  yes.addEventListener('click', () => {
    box.remove();
    go();
  });
  no.addEventListener('click', () => box.remove());
  append(where, box);
}

// Under a transformed request: its token's claims, or why no request is made.
function transformNote(r) {
  return h('div', {},
    h('p', { class: 'muted' }, 'Shaped by the trigger\'s request transform.'),
    r.token_claims ? h('pre', { class: 'request-headers' }, `token claims: ${pretty(r.token_claims)}`) : null,
    r.transform_error ? notice('error', `No request is made: ${text(r.transform_error)}`) : null);
}

// The request as sent (or as a transform would send it).
function requestView(r) {
  if (!r) return h('p', { class: 'muted' }, 'No request recorded.');
  const headers = r.headers || {};
  const entries = Array.isArray(headers) ? headers : Object.entries(headers);
  return h('div', { class: 'request', dataset: { test: 'request' } },
    h('pre', { class: 'request-line' }, `${text(r.method || 'POST')} ${text(r.url)}`),
    entries.length ? h('pre', { class: 'request-headers' }, entries.map(([k, v]) => `${text(k)}: ${text(v)}`).join('\n')) : null,
    r.body !== undefined && r.body !== null ? h('pre', { class: 'payload request-body' }, indentJson(r.body)) : h('p', { class: 'muted' }, 'No body.'));
}

// ---------------------------------------------------------------- events

function eventsScreen(root, params) {
  const filters = {
    trigger: params.get('trigger') || '', status: params.get('status') || '', type: params.get('type') || '',
    from: params.get('from') || '', to: params.get('to') || '',
  };
  const trigSel = h('select', { id: 'e-trigger' }, h('option', { value: '' }, 'any trigger'),
    filters.trigger ? h('option', { value: filters.trigger, selected: true }, filters.trigger) : null);
  const statusSel = h('select', { id: 'e-status' }, h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filters.status }, s)));
  const typeIn = h('input', { id: 'e-type', value: filters.type, placeholder: 'type' });
  const fromIn = h('input', { id: 'e-from', type: 'datetime-local', value: filters.from });
  const toIn = h('input', { id: 'e-to', type: 'datetime-local', value: filters.to });
  const tail = h('input', { type: 'checkbox', id: 'e-tail' });
  const list = h('div', { id: 'event-list' });
  const message = h('div');
  const older = h('button', { type: 'button', id: 'older' }, 'Older →');
  const newest = h('button', { type: 'button', id: 'newest' }, '← Newest');
  const pageInfo = h('span', { class: 'muted' });
  const form = h('form', { class: 'filters card', id: 'event-filters' },
    field('Trigger', trigSel), field('Status', statusSel), field('Type', typeIn),
    field('From', fromIn), field('To', toIn),
    h('div', { class: 'filter-actions' },
      h('button', { type: 'submit', id: 'apply-filters' }, 'Filter'),
      h('label', { class: 'check' }, tail, 'live tail')));
  replace(root, h('h1', {}, 'Events'), form, message, list,
    h('div', { class: 'pager' }, newest, pageInfo, older));

  api.triggers().then((r) => {
    for (const t of r.triggers || []) {
      if (t.name !== filters.trigger) append(trigSel, h('option', { value: t.name }, t.name));
    }
  }).catch(() => {});

  let rows = [];
  let before = null; // keyset: this page holds ids below it (null: the newest)
  let nextBefore = null; // the server's cursor to the older page
  const apiFilters = () => ({
    trigger: trigSel.value, status: statusSel.value, type: typeIn.value.trim(),
    from: isoOf(fromIn.value), to: isoOf(toIn.value),
  });
  const render = () => {
    const none = nextBefore === null ? 'No events.' : 'No events among the newest searched; Older → searches further back.';
    replace(list, rows.length === 0 ? notice('info', none) : table(
      ['Id', 'Trigger', 'Type', 'Status', 'Attempts', 'Due', 'Remark'],
      rows.map((e) => h('tr', { dataset: { event: String(e.id) } },
        h('td', {}, h('a', { href: `#/events/${encodeURIComponent(e.id)}` }, text(e.id))),
        h('td', {}, text(e.trigger_name)), h('td', {}, text(e.type)), h('td', {}, badge(e.status)),
        h('td', { class: 'num' }, text(e.attempts)), h('td', {}, when(e.ts)),
        h('td', { class: 'error-text' }, text(e.remark)))), 'events'));
    older.disabled = nextBefore === null || nextBefore === undefined;
    newest.disabled = before === null;
    pageInfo.textContent = before === null ? 'newest first' : `below id ${before}`;
  };
  // The server reads a bounded span of ids per call, so a rare filter can
  // answer a short (even empty) page with a cursor: follow it a few times
  // to fill the page.
  const load = async () => {
    try {
      let got = [];
      let next = before;
      for (let calls = 0; calls < 10; calls++) {
        const r = await api.events({ ...apiFilters(), limit: PAGE - got.length, before: next ?? '' });
        got = got.concat(r.events || []);
        next = r.next_before ?? null;
        if (got.length >= PAGE || next === null) break;
      }
      rows = got;
      nextBefore = next;
      clear(message);
      render();
    } catch (e) {
      replace(message, notice('error', errorText(e)));
    }
  };
  const loadPage = load;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    before = null;
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries({ trigger: trigSel.value, status: statusSel.value, type: typeIn.value, from: fromIn.value, to: toIn.value })) if (v) q.set(k, v);
    history.replaceState(null, '', `#/events${q.toString() ? `?${q}` : ''}`);
    loadPage();
  });
  older.addEventListener('click', () => {
    if (nextBefore === null) return;
    before = nextBefore;
    tail.checked = false;
    loadPage();
  });
  newest.addEventListener('click', () => {
    before = null;
    loadPage();
  });
  loadPage();
  // Live tail: the newest page again every second while it is shown.
  const stop = every(1000, async () => {
    if (tail.checked && before === null) await load();
  });
  return stop;
}

function eventScreen(root, id) {
  const message = h('div', { id: 'event-message' });
  const body = h('div');
  replace(root, h('div', { class: 'title-row' }, h('h1', {}, `Event ${id}`),
    h('a', { href: '#/events' }, '← events')), message, body);
  let last = '';
  const load = async () => {
    let r;
    try {
      r = await api.event(id);
    } catch (e) {
      replace(message, notice('error', errorText(e)));
      return;
    }
    // Re-drawn only when something changed (keeps the page still while read).
    const sig = JSON.stringify(r);
    if (sig === last) return;
    last = sig;
    const e = r.event;
    const attempts = Array.isArray(e.attempts) ? e.attempts : [];
    const redeliver = h('button', { type: 'button', id: 'redeliver' }, 'Redeliver');
    const cancel = h('button', { type: 'button', id: 'cancel', class: 'danger' }, 'Cancel');
    const act = (fn, done) => async () => {
      redeliver.disabled = true;
      cancel.disabled = true;
      try {
        await fn(e.id);
        replace(message, notice('ok', done));
        last = '';
        await load();
      } catch (err) {
        replace(message, notice('error', errorText(err)));
      } finally {
        redeliver.disabled = false;
        cancel.disabled = false;
      }
    };
    redeliver.addEventListener('click', act(api.redeliver, 'Queued for redelivery.'));
    cancel.addEventListener('click', act(api.cancel, 'Cancelled.'));
    const link = (ev, label) => h('a', { href: `#/events/${encodeURIComponent(ev.id)}`, class: 'chip',
      dataset: { test: label } }, `${label} ${text(ev.id)}${ev.type ? ` · ${text(ev.type)}` : ''}${ev.status ? ` · ${text(ev.status)}` : ''}`);
    const links = [
      ...(e.origin_id ? [link({ id: e.origin_id }, 'queued by')] : []),
      ...(e.chained || []).map((c) => link(c, 'chained')),
      ...(e.dlq || []).map((d) => link(d, 'dlq')),
    ];
    replace(body,
      h('section', { class: 'card' },
        h('dl', { class: 'facts' },
          ...[['Status', badge(e.status)], ['Trigger', h('a', { href: `#/events?trigger=${encodeURIComponent(e.trigger_name || '')}` }, text(e.trigger_name))],
            ['Type', text(e.type)], ['Attempts', h('span', { id: 'attempt-count' }, String(attempts.length))],
            ['Due', when(e.ts)], ['Happened', when(e.event_ts)], ['Processed', when(e.processed_at)],
['Remark', h('span', { class: 'error-text', id: 'remark' }, text(e.remark))]]
            .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
        h('div', { class: 'actions' }, redeliver, cancel),
        links.length ? h('div', { class: 'links' }, links) : null),
      h('section', { class: 'card' }, h('h2', {}, 'Payload'),
        h('pre', { class: 'payload', id: 'payload' }, e.payload === null ? '(none stored)' : pretty(e.payload))),
      h('section', { class: 'card' }, h('h2', {}, 'Request as sent'),
        e.request ? requestView(e.request)
          : h('p', { class: 'muted' }, 'Its trigger no longer exists (or its payload could not be stored).'),
        e.request && e.request.transformed ? transformNote(e.request) : null),
      h('section', { class: 'card' }, h('h2', {}, `Attempts (${attempts.length})`),
        attempts.length === 0 ? h('p', { class: 'muted' }, 'None yet.') : table(
          ['#', 'Time', 'Status', 'Duration', 'Error', 'Response body'],
          // Numbered in order over every delivery (a redelivery's attempts
          // count from 1 again in the database).
          attempts.map((a, i) => h('tr', { dataset: { attempt: String(i + 1) } },
            h('td', {}, String(i + 1)), h('td', {}, when(a.invocation_time)),
            h('td', {}, text(a.response_status_code ?? '—')),
            h('td', { class: 'num' }, a.duration_ms === undefined || a.duration_ms === null ? '' : `${a.duration_ms} ms`),
            h('td', { class: 'error-text' }, text(a.error_msg)),
            h('td', {}, h('pre', { class: 'response' }, text(a.response_body))))), 'attempts')));
  };
  return every(1500, load);
}

// ---------------------------------------------------------------- bulk

function bulkScreen(root) {
  const trigSel = h('select', { id: 'b-trigger', required: true }, h('option', { value: '' }, 'pick a trigger'));
  const actionSel = h('select', { id: 'b-action' },
    h('option', { value: 'redeliver' }, 'redeliver the failed events'),
    h('option', { value: 'cancel' }, 'cancel the staged events'));
  const fromIn = h('input', { id: 'b-from', type: 'datetime-local' });
  const toIn = h('input', { id: 'b-to', type: 'datetime-local' });
  const out = h('div', { id: 'bulk-result' });
  const countBtn = h('button', { type: 'submit', id: 'bulk-count' }, 'Count');
  const form = h('form', { class: 'card form', id: 'bulk-form' },
    h('div', { class: 'grid2' }, field('Trigger', trigSel), field('Action', actionSel)),
    h('div', { class: 'grid2' }, field('From', fromIn), field('To', toIn)),
    h('div', { class: 'actions' }, countBtn), out);
  replace(root, h('h1', {}, 'Bulk actions'),
    h('p', { class: 'muted' }, 'Redeliver the failed events (or cancel the staged ones) of one trigger in a time range. The count comes first; nothing changes until you confirm.'),
    form);
  api.triggers().then((r) => {
    for (const t of r.triggers || []) append(trigSel, h('option', { value: t.name }, t.name));
  }).catch((e) => replace(out, notice('error', errorText(e))));
  const range = () => {
    const b = { action: actionSel.value, trigger: trigSel.value };
    if (fromIn.value) b.from = isoOf(fromIn.value);
    if (toIn.value) b.to = isoOf(toIn.value);
    return b;
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const b = range();
    const verb = b.action === 'redeliver' ? 'redelivered' : 'cancelled';
    const which = b.action === 'redeliver' ? 'failed' : 'staged';
    try {
      const r = await api.bulk({ ...b, dry_run: true });
      const n = Number(r.count ?? 0);
      if (n === 0) {
        replace(out, notice('info', `No ${which} event of ${b.trigger} in that range.`));
        return;
      }
      const confirm = h('button', { type: 'button', id: 'bulk-confirm', class: 'danger' }, `Confirm: ${n} events`);
      confirm.addEventListener('click', async () => {
        confirm.disabled = true;
        try {
          const done = await api.bulk({ ...b, max_id: r.max_id });
          const skipped = Number(done.skipped) || 0;
          replace(out, notice('ok', `${Number(done.done) || 0} events ${verb}${skipped ? `, ${skipped} skipped (being delivered)` : ''}.`));
        } catch (e) {
          replace(out, notice('error', errorText(e)));
        }
      });
      replace(out, h('div', { class: 'confirm' },
        h('span', { id: 'bulk-count-text' }, `${n} ${which} events of ${b.trigger} would be ${verb}.`), confirm));
    } catch (e) {
      replace(out, notice('error', errorText(e)));
    }
  });
}

// ---------------------------------------------------------------- queue

function queueScreen(root) {
  const typeIn = h('input', { id: 'q-type', required: true, placeholder: 'ORDER_SHIPPED' });
  const payloadIn = h('textarea', { id: 'q-payload', rows: 6, spellcheck: false, value: '{\n  \n}' });
  const delayIn = h('input', { id: 'q-delay', type: 'number', min: 0, value: 0 });
  const syncIn = h('input', { id: 'q-sync', type: 'checkbox' });
  const out = h('div', { id: 'queue-result' });
  const send = h('button', { type: 'submit', id: 'q-send' }, 'Queue event');
  const form = h('form', { class: 'card form', id: 'queue-form' },
    field('Type', typeIn, 'a custom event type; triggers of this type receive it'),
    field('Payload (JSON)', payloadIn),
    h('div', { class: 'grid2' }, field('Delay (ms)', delayIn),
      h('label', { class: 'check' }, syncIn, 'synchronous: wait for the webhook\'s answer (up to 10 s)')),
    h('div', { class: 'actions' }, send), out);
  replace(root, h('h1', {}, 'Queue a custom event'), form);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let payload;
    try {
      payload = JSON.parse(payloadIn.value);
    } catch (e) {
      replace(out, notice('error', `The payload is not JSON: ${e.message}`));
      return;
    }
    send.disabled = true;
    replace(out, h('p', { class: 'muted' }, syncIn.checked ? 'Waiting for the webhook…' : 'Queueing…'));
    try {
      const r = await api.queue({ type: typeIn.value.trim(), payload, delay: Number(delayIn.value) || 0,
        isSynchronous: syncIn.checked });
      replace(out, notice('ok', syncIn.checked ? 'The webhook answered:' : 'Queued.'),
        h('pre', { class: 'payload', id: 'queue-answer' }, pretty(r)));
    } catch (e) {
      replace(out, notice('error', errorText(e)));
    } finally {
      send.disabled = false;
    }
  });
}

// ---------------------------------------------------------------- backfills

function backfillsScreen(root) {
  const trigSel = h('select', { id: 'bf-trigger', required: true }, h('option', { value: '' }, 'pick a trigger'));
  const condIn = h('input', { id: 'bf-condition', placeholder: 'new.id > 1000 (optional)', spellcheck: false });
  const message = h('div');
  const list = h('div', { id: 'backfill-list' });
  const form = h('form', { class: 'card form', id: 'backfill-form' },
    h('div', { class: 'grid2' }, field('Trigger (DB_INSERT or DB_UPDATE with a table)', trigSel), field('Condition', condIn)),
    h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'bf-start' }, 'Start backfill')));
  replace(root, h('h1', {}, 'Backfills'),
    h('p', { class: 'muted' }, 'One event per existing row of the trigger\'s table, consistent with the live stream.'),
    form, message, list);
  api.triggers().then((r) => {
    for (const t of r.triggers || []) {
      if ((t.type === 'DB_INSERT' || t.type === 'DB_UPDATE') && t.table_name) append(trigSel, h('option', { value: t.name }, t.name));
    }
  }).catch(() => {});
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const b = { trigger: trigSel.value };
      if (condIn.value.trim()) b.condition = condIn.value.trim();
      const r = await api.startBackfill(b);
      replace(message, notice('ok', `Backfill ${text(r.id)} started.`));
      refresh();
    } catch (e) {
      replace(message, notice('error', errorText(e)));
    }
  });
  const refresh = async () => {
    let r;
    try {
      r = await api.backfills();
    } catch (e) {
      replace(list, notice('error', errorText(e)));
      return;
    }
    const items = r.backfills || [];
    replace(list, items.length === 0 ? notice('info', 'No backfills yet.') : table(
      ['Id', 'Trigger', 'State', 'Progress', 'Started', 'Finished', 'Error', ''],
      items.map((b) => {
        const done = Number(b.rows_done) || 0;
        const est = Number(b.rows_estimate) || 0;
        const bar = h('progress', { max: Math.max(est, done, 1), value: done });
        const cancel = b.state === 'running' ? h('button', { type: 'button', class: 'small danger', dataset: { test: `cancel-backfill-${b.id}` } }, 'Cancel') : null;
        if (cancel) {
          cancel.addEventListener('click', async () => {
            try {
              await api.cancelBackfill(b.id);
              refresh();
            } catch (e) {
              replace(message, notice('error', errorText(e)));
            }
          });
        }
        return h('tr', {}, h('td', {}, text(b.id)), h('td', {}, text(b.trigger_name)), h('td', {}, badge(b.state)),
          h('td', {}, bar, ` ${done}${est ? ` / ~${est}` : ''}`), h('td', {}, when(b.started_at)),
          h('td', {}, when(b.finished_at)), h('td', { class: 'error-text' }, text(b.error)), h('td', {}, cancel));
      }), 'backfills'));
  };
  return every(2000, refresh);
}

// ---------------------------------------------------------------- router

let cleanup = null;

function route() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const root = main();
  const hash = location.hash.replace(/^#/, '') || '/overview';
  const [path, qs] = hash.split('?');
  const params = new URLSearchParams(qs || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const nav = document.getElementById('nav');
  if (!token() && parts[0] !== 'login') {
    location.hash = '#/login';
    return;
  }
  nav.hidden = parts[0] === 'login';
  for (const a of nav.querySelectorAll('a')) {
    a.classList.toggle('current', a.getAttribute('href') === `#/${parts[0]}`);
  }
  let done;
  switch (parts[0]) {
    case 'login': done = loginScreen(root, params); break;
    case 'overview': done = overviewScreen(root); break;
    case 'triggers':
      if (parts[1] === 'new') done = triggerForm(root);
      else if (parts[1] === 'edit') done = triggerForm(root, parts[2]);
      else done = triggersScreen(root);
      break;
    case 'events': done = parts[1] ? eventScreen(root, parts[1]) : eventsScreen(root, params); break;
    case 'bulk': done = bulkScreen(root); break;
    case 'queue': done = queueScreen(root); break;
    case 'backfills': done = backfillsScreen(root); break;
    default: replace(root, h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/overview' }, 'Overview')));
  }
  cleanup = typeof done === 'function' ? done : null;
}

setUnauthorizedHandler(() => {
  forgetToken();
  location.hash = '#/login?expired=1';
});

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('logout').addEventListener('click', () => {
    forgetToken();
    location.hash = '#/login';
  });
  window.addEventListener('hashchange', route);
  route();
});
