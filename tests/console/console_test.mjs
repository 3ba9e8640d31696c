// The web console in headless Chromium (SPEC §12), driven by playwright-core,
// against a real walhook, Postgres and webhook receiver that
// tests/integration/console_test.cpp starts. Run by that test:
//
//   node tests/console/console_test.mjs
//
// Environment: WALHOOK_URL (http://127.0.0.1:PORT), ADMIN_TOKEN, USER_TOKEN (a
// valid token whose role is not admin), SOURCE_DB (a libpq conninfo for psql),
// RECEIVER_URL, SCREENSHOTS (a directory), PLAYWRIGHT_CORE (the package's
// directory), CHROMIUM (the browser's path).
//
// Exits 0 when every step passed; otherwise prints the step and why, and
// leaves a screenshot "failure.png". Prints every screenshot's path.

import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`console_test: ${k} is not set`);
  return v;
};
const URL_BASE = env('WALHOOK_URL');
const ADMIN = env('ADMIN_TOKEN');
const USER = env('USER_TOKEN');
const DB = env('SOURCE_DB');
const RECEIVER = env('RECEIVER_URL');
const SHOTS = env('SCREENSHOTS');
const { chromium } = createRequire(import.meta.url)(env('PLAYWRIGHT_CORE'));
const XSS = '<img src=x onerror=alert(1)>';
const WAIT = 30000;

mkdirSync(SHOTS, { recursive: true });
const shots = [];
let step = 'start';

function sql(statement) {
  return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', DB, '-c', statement],
    { encoding: 'utf8' }).trim();
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function shot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

// Records what must never happen on the page: a dialog (alert), an
// uncaught error, a CSP violation, a request to another origin.
function watch(page, seen) {
  page.on('dialog', (d) => {
    seen.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => seen.errors.push(String(e)));
  page.on('request', (r) => {
    if (!r.url().startsWith(URL_BASE)) seen.foreign.push(r.url());
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) seen.errors.push(m.text());
  });
}

async function cspViolations(page) {
  return page.evaluate(() => window.__csp || []);
}

async function login(page, token) {
  await page.goto(`${URL_BASE}/console/`);
  await page.waitForSelector('#login-form');
  await page.fill('#token', token);
  await page.click('#login');
}

async function main() {
  const browser = await chromium.launch({
    executablePath: env('CHROMIUM'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const seen = { dialogs: [], errors: [], foreign: [] };
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  watch(page, seen);
  try {
    step = 'the page and its headers';
    for (const file of ['/console/', '/console/app.js', '/console/app.css']) {
      const res = await page.request.get(URL_BASE + file);
      check(res.status() === 200, `${file}: HTTP ${res.status()}`);
      const hd = res.headers();
      check(hd['content-security-policy'] === "default-src 'self'; frame-ancestors 'none'",
        `${file}: Content-Security-Policy is ${hd['content-security-policy']}`);
      check(hd['x-content-type-options'] === 'nosniff', `${file}: X-Content-Type-Options is ${hd['x-content-type-options']}`);
      check(!hd['set-cookie'], `${file}: sets a cookie`);
    }

    step = 'a wrong token is refused with a message';
    await login(page, 'not-a-token');
    await page.waitForSelector('#login-message .notice.error', { timeout: WAIT });
    const refused = await page.textContent('#login-message');
    check(/refused/i.test(refused), `the message for a wrong token: ${refused}`);
    check(await page.evaluate(() => sessionStorage.length) === 0, 'a refused token was kept');
    await shot(page, 'login-refused');

    step = 'a token that is not an admin token is refused with a message';
    await page.fill('#token', USER);
    await page.click('#login');
    await page.waitForFunction(() => /not an admin token/.test(document.querySelector('#login-message').textContent),
      null, { timeout: WAIT });

    step = 'log in with an admin token: the overview';
    await page.fill('#token', ADMIN);
    await page.click('#login');
    await page.waitForSelector('table[data-test=nodes] tbody tr', { timeout: WAIT });
    check(await page.evaluate((t) => sessionStorage.getItem('walhook.admin_token') === t, ADMIN),
      'the token is not in sessionStorage');
    check(await page.evaluate(() => localStorage.length === 0 && document.cookie === ''),
      'the console wrote localStorage or a cookie');
    await page.waitForTimeout(3000); // a few points of the chart
    await shot(page, 'overview');

    step = 'create a trigger through the form';
    await page.click('a[href="#/triggers"]');
    await page.waitForSelector('#new-trigger');
    await page.click('#new-trigger');
    await page.waitForSelector('#trigger-form');
    await page.fill('#f-name', 'items-hook');
    await page.selectOption('#f-type', 'DB_INSERT');
    await page.waitForSelector('#f-table option[value="items"]', { state: 'attached', timeout: WAIT });
    await page.selectOption('#f-table', 'items');
    await page.fill('#f-url', `${RECEIVER}/items`);
    await page.click('#add-header');
    await page.fill('.header-row .h-key', 'X-Api-Key');
    await page.fill('.header-row .h-value', 'k-secret-123');
    check(await page.getAttribute('.header-row .h-value', 'type') === 'password', 'a header value is not masked');
    // Checked as you type, with the error's position.
    await page.fill('#f-condition', 'new.id >');
    await page.waitForSelector('#condition-check [data-test=parse-error]', { timeout: WAIT });
    const condError = await page.textContent('#condition-check');
    check(/column 9/.test(condError), `the condition's error has no position: ${condError}`);
    await shot(page, 'trigger-form-error');
    await page.fill('#f-condition', 'new.id > 0');
    await page.waitForSelector('#condition-check .ok', { timeout: WAIT });
    await shot(page, 'trigger-form');
    await page.click('#save-trigger');
    await page.waitForSelector('tr[data-trigger="items-hook"]', { timeout: WAIT });
    check(sql("SELECT headers->>'X-Api-Key' FROM eventing.triggers WHERE name = 'items-hook'") === 'k-secret-123',
      'the header was not stored');
    await shot(page, 'triggers');

    step = 'insert a row and watch its event turn processed';
    await page.waitForTimeout(2000); // trigger changes apply within a second
    sql("INSERT INTO items (note) VALUES ('hello from the console test')");
    await page.goto(`${URL_BASE}/console/#/events?trigger=items-hook`);
    await page.check('#e-tail');
    await page.waitForSelector('table[data-test=events] tbody tr', { timeout: WAIT });
    await page.waitForFunction(() => {
      const b = document.querySelector('table[data-test=events] tbody tr [data-test=status]');
      return b && b.textContent === 'processed';
    }, null, { timeout: WAIT });
    await shot(page, 'events');

    step = 'open the event';
    await page.click('table[data-test=events] tbody tr a');
    await page.waitForSelector('#attempt-count', { timeout: WAIT });
    await page.waitForFunction(() => document.querySelector('#attempt-count').textContent === '1', null, { timeout: WAIT });
    const detail = await page.textContent('main');
    check(detail.includes('hello from the console test'), 'the payload is not shown');
    check(detail.includes('X-Api-Key: ********'), 'the request as sent does not show the masked header');
    check(!detail.includes('k-secret-123'), 'a header secret is shown');
    await shot(page, 'event');

    step = 'redeliver it and see attempt 2';
    await page.click('#redeliver');
    await page.waitForFunction(() => document.querySelector('#attempt-count').textContent === '2', null, { timeout: WAIT });
    await page.waitForSelector('table[data-test=attempts] tr[data-attempt="2"]', { timeout: WAIT });
    await shot(page, 'event-redelivered');

    step = 'the transform is checked as typed and previewed against the latest event (not saved)';
    await page.goto(`${URL_BASE}/console/#/triggers/edit/items-hook`);
    await page.waitForSelector('#f-transform', { timeout: WAIT });
    check(await page.inputValue('.header-row .h-value') === '********', 'a stored header value is not masked');
    await page.fill('#f-transform', '{"method": "PUT", "url": "{{$base_url}}/{{$body.data.doc.id}}"}');
    await page.waitForSelector('#transform-check > *', { timeout: WAIT });
    await page.click('#preview-button');
    await page.waitForSelector('#preview [data-test=request]', { timeout: WAIT });
    const preview = await page.textContent('#preview [data-test=request]');
    check(preview.includes('PUT') && preview.includes(`${RECEIVER}/items/`), `the preview: ${preview}`);
    await shot(page, 'trigger-transform-preview');

    step = 'a row holding HTML shows its characters and runs nothing';
    sql(`INSERT INTO items (note) VALUES ('${XSS}')`);
    await page.goto(`${URL_BASE}/console/#/events?trigger=items-hook`);
    await page.check('#e-tail');
    await page.waitForFunction(() => document.querySelectorAll('table[data-test=events] tbody tr').length >= 2,
      null, { timeout: WAIT });
    await page.click('table[data-test=events] tbody tr:first-child a');
    await page.waitForSelector('#payload', { timeout: WAIT });
    await page.waitForFunction((x) => document.querySelector('#payload').textContent.includes(x), XSS, { timeout: WAIT });
    await page.waitForFunction((x) => document.querySelector('.request-body').textContent.includes(x), XSS, { timeout: WAIT });
    check(await page.evaluate(() => document.querySelectorAll('main img').length) === 0, 'an <img> was created');
    await page.waitForTimeout(1000);
    await shot(page, 'event-html-row');

    step = 'bulk: count, then confirm';
    sql("INSERT INTO other (v) VALUES ('fails')"); // to fail-hook, which answers 500
    const failed = Date.now();
    while (sql("SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'fail-hook' AND status = 'failed'") !== '1') {
      check(Date.now() - failed < WAIT, 'the failing event did not fail');
      await page.waitForTimeout(200);
    }
    await page.click('a[href="#/bulk"]');
    await page.waitForSelector('#b-trigger option[value="fail-hook"]', { state: 'attached', timeout: WAIT });
    await page.selectOption('#b-trigger', 'fail-hook');
    await page.selectOption('#b-action', 'redeliver');
    await page.click('#bulk-count');
    await page.waitForSelector('#bulk-count-text', { timeout: WAIT });
    const counted = await page.textContent('#bulk-count-text');
    check(/^1 failed events of fail-hook/.test(counted), `the count: ${counted}`);
    await shot(page, 'bulk');
    await page.click('#bulk-confirm');
    await page.waitForFunction(() => /1 events redelivered/.test(document.querySelector('#bulk-result').textContent),
      null, { timeout: WAIT });

    step = 'queue a custom event and get the synchronous result';
    await page.click('a[href="#/queue"]');
    await page.fill('#q-type', 'PING');
    await page.fill('#q-payload', '{"ping": 1}');
    await page.check('#q-sync');
    await page.click('#q-send');
    await page.waitForSelector('#queue-answer', { timeout: WAIT });
    const answer = await page.textContent('#queue-answer');
    check(answer.includes('"pong"'), `the synchronous result: ${answer}`);
    await shot(page, 'queue');

    step = 'backfills: start one for items-hook and watch it finish';
    await page.click('a[href="#/backfills"]');
    await page.waitForSelector('#backfill-list > *', { timeout: WAIT });
    await page.waitForSelector('#bf-trigger option[value="items-hook"]', { state: 'attached', timeout: WAIT });
    await page.selectOption('#bf-trigger', 'items-hook');
    await page.click('#bf-start');
    await page.waitForFunction(() => [...document.querySelectorAll('#backfill-list [data-test=status]')]
      .some((b) => b.textContent === 'done'), null, { timeout: WAIT });
    const rows = sql('SELECT count(*) FROM items');
    const backfilled = sql("SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'items-hook' " +
      "AND payload::jsonb ? 'backfill'");
    check(rows === backfilled, `${backfilled} backfill events for ${rows} rows`);
    await shot(page, 'backfills');

    step = 'the trigger list toggles enabled';
    await page.click('a[href="#/triggers"]');
    await page.waitForSelector('[data-test="enable-items-hook"]', { timeout: WAIT });
    await page.uncheck('[data-test="enable-items-hook"]');
    const off = Date.now();
    while (sql("SELECT enabled FROM eventing.triggers WHERE name = 'items-hook'") !== 'f') {
      check(Date.now() - off < WAIT, 'disable did not reach the database');
      await page.waitForTimeout(200);
    }
    await page.waitForSelector('[data-test="enable-items-hook"]:not(:checked)');
    await shot(page, 'triggers-after');

    step = 'a transformed trigger\'s event shows the request its transform shapes';
    sql(`UPDATE eventing.triggers SET request_transform = '{"method": "PUT", ` +
      `"url": "{{$base_url}}/{{$body.data.doc.id}}", "headers": {"X-Shaped": "yes"}}' WHERE name = 'items-hook'`);
    const shapedId = sql("SELECT max(id) FROM eventing.event_logs WHERE trigger_name = 'items-hook'");
    const docId = sql(`SELECT payload->'doc'->>'id' FROM eventing.event_logs WHERE id = ${shapedId}`);
    await page.goto(`${URL_BASE}/console/#/events/${shapedId}`);
    await page.waitForSelector('.request-line', { timeout: WAIT });
    const line = await page.textContent('.request-line');
    check(line === `PUT ${RECEIVER}/items/${docId}`, `the transformed request line: ${line}`);
    const shapedHeaders = await page.textContent('.request-headers');
    check(shapedHeaders.includes('X-Shaped: ********'), `the transformed headers: ${shapedHeaders}`);
    await shot(page, 'event-transformed');

    step = 'at a phone\'s width';
    const phone = await browser.newContext({ viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true });
    const p2 = await phone.newPage();
    watch(p2, seen);
    await login(p2, ADMIN);
    await p2.waitForSelector('table[data-test=nodes] tbody tr', { timeout: WAIT });
    await p2.waitForTimeout(1500);
    await shot(p2, 'phone-overview');
    const wide = await p2.evaluate(() => document.documentElement.scrollWidth);
    check(wide <= 376, `the overview is ${wide} px wide at 375`);
    const id = sql("SELECT max(id) FROM eventing.event_logs WHERE trigger_name = 'items-hook'");
    await p2.goto(`${URL_BASE}/console/#/events/${id}`);
    await p2.waitForSelector('#payload', { timeout: WAIT });
    await shot(p2, 'phone-event');
    const wideEvent = await p2.evaluate(() => document.documentElement.scrollWidth);
    check(wideEvent <= 376, `the event is ${wideEvent} px wide at 375`);
    await p2.goto(`${URL_BASE}/console/#/triggers/new`);
    await p2.waitForSelector('#trigger-form', { timeout: WAIT });
    await shot(p2, 'phone-trigger-form');

    step = 'nothing ran that should not have';
    check(seen.dialogs.length === 0, `dialogs: ${seen.dialogs.join(', ')}`);
    check(seen.foreign.length === 0, `requests to other origins: ${seen.foreign.join(', ')}`);
    const csp = [...(await cspViolations(page)), ...(await cspViolations(p2))];
    check(csp.length === 0, `CSP violations: ${csp.join(', ')}`);
    check(seen.errors.length === 0, `page errors: ${seen.errors.join(' | ')}`);
    check((await context.cookies()).length === 0 && (await phone.cookies()).length === 0, 'a cookie was set');
    await phone.close();
  } catch (e) {
    await page.screenshot({ path: path.join(SHOTS, 'failure.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    for (const f of shots) console.log(`screenshot: ${f}`);
    await browser.close();
  }
}

main().then(
  () => {
    console.log('console_test: passed');
    process.exit(0);
  },
  (e) => {
    console.error(`console_test: FAILED at "${step}": ${e && e.message ? e.message : e}`);
    process.exit(1);
  },
);
