// End-to-end check of the two pages `belfry serve` answers with, in a headless Chromium:
// the demo inbox (/inbox) receives an item live, marks it read; the operator console (/)
// lists the plugins, explains the delivery (its timeline shows the inbox read) and filters.
//
// Env: BELFRY_URL (http://127.0.0.1:PORT of a running `belfry serve`, workers on),
//      BELFRY_KEY (an API key of a tenant),
//      BELFRY_SCREENSHOTS (optional directory: inbox.png and console.png are saved there),
//      BELFRY_CHROMIUM (optional; default /usr/bin/chromium).
// Every step has its own deadline (at most 10 s) and the whole run at most 60 s; any failure
// prints what failed and exits 1. `setup.sh` beside this file installs what it needs.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const BASE = (process.env.BELFRY_URL || '').replace(/\/+$/, '');
const KEY = process.env.BELFRY_KEY || '';
const SHOTS = process.env.BELFRY_SCREENSHOTS || '';
const CHROMIUM = process.env.BELFRY_CHROMIUM || '/usr/bin/chromium';
const RECIPIENT = 'u-browser';
const STEP_MS = 10_000;
const TOTAL_MS = 60_000;
// The trace kind the engine appends when an inbox item is first read (traces::kind::INBOX_READ).
const INBOX_READ = 'inbox.read';

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

let browser = null;
const pages = {};
const pageProblems = []; // uncaught page errors and CSP violations: each is a failure

function fail(message) {
  const error = new Error(message);
  error.expected = true;
  throw error;
}

async function step(name, fn) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${STEP_MS / 1000} s`)), STEP_MS);
  });
  try {
    const value = await Promise.race([fn(), deadline]);
    log(`ok: ${name}`);
    return value;
  } catch (e) {
    e.message = `step "${name}": ${e.message}`;
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** A JSON request with the API key (or another bearer), bounded in time. */
async function api(method, path, { body, bearer = KEY, headers = {} } = {}) {
  let res;
  try {
    res = await fetch(BASE + path, {
      method,
      headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(STEP_MS),
    });
  } catch (e) {
    fail(`${method} ${BASE}${path}: ${e.cause ? e.cause.message || e.cause.code : e.message}`);
  }
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* reported below */ }
  return { status: res.status, json, text };
}

function expectStatus(res, want, what) {
  if (res.status !== want) fail(`${what}: expected HTTP ${want}, got ${res.status}: ${res.text.slice(0, 500)}`);
  return res.json;
}

/** Waits for `fn(arg)` in the page to return something truthy; a string starting with
 * `error:` fails at once with that text. */
async function until(page, what, fn, arg) {
  let handle;
  try {
    // A little under the step's deadline, so this more telling message is the one shown.
    handle = await page.waitForFunction(fn, arg, { timeout: STEP_MS - 1000, polling: 100 });
  } catch (e) {
    const shown = await page.locator('[data-testid="error"]').textContent({ timeout: 1000 }).catch(() => '');
    fail(`waiting for ${what}: ${e.message.split('\n')[0]}${shown ? ` (page error box: ${shown})` : ''}`);
  }
  const value = await handle.jsonValue();
  if (typeof value === 'string' && value.startsWith('error:')) fail(`${what}: ${value.slice(6).trim()}`);
  return value;
}

async function openPage(name, url) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  pages[name] = page;
  page.on('pageerror', (e) => pageProblems.push(`${name}: uncaught ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(text)) {
      pageProblems.push(`${name}: ${text}`);
    }
  });
  const res = await page.goto(url, { waitUntil: 'domcontentloaded', timeout: STEP_MS });
  if (!res || res.status() !== 200) fail(`GET ${new URL(url).pathname}: HTTP ${res ? res.status() : 'no answer'}`);
  return page;
}

async function screenshot(name) {
  if (!SHOTS || !pages[name]) return;
  mkdirSync(SHOTS, { recursive: true });
  await pages[name].screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true, timeout: STEP_MS });
  log(`saved ${join(SHOTS, `${name}.png`)}`);
}

function checkPageProblems() {
  if (pageProblems.length) fail(`the pages reported problems:\n  ${pageProblems.join('\n  ')}`);
}

async function main() {
  if (!BASE || !KEY) fail('BELFRY_URL and BELFRY_KEY must be set');

  browser = await step('launch chromium', () => chromium.launch({
    executablePath: CHROMIUM,
    timeout: STEP_MS,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  }));

  // 1. An inbox token for the recipient.
  const token = await step('mint an inbox token', async () => {
    const out = expectStatus(await api('POST', '/v1/inbox/tokens', { body: { recipient_id: RECIPIENT } }),
      201, 'POST /v1/inbox/tokens');
    if (!out || typeof out.token !== 'string') fail(`no token in ${JSON.stringify(out)}`);
    return out.token;
  });

  // 2. The inbox page goes live; note what it shows before the event.
  const inbox = await step('open the inbox page and go live', async () => {
    const page = await openPage('inbox', `${BASE}/inbox?token=${encodeURIComponent(token)}`);
    await until(page, 'stream-status "live"', () => {
      const s = document.querySelector('[data-testid="stream-status"]');
      return s && s.textContent.trim() === 'live';
    });
    return page;
  });
  const before = await step('read the unread count', async () => {
    const n = await until(inbox, 'a numeric unread-count', () => {
      const t = document.querySelector('[data-testid="unread-count"]')?.textContent.trim();
      return /^\d+$/.test(t || '') ? t : null; // text: a count of 0 must count as found
    }).then(Number);
    const ids = await inbox.$$eval('[data-testid="inbox-item"]', (lis) => lis.map((li) => li.dataset.id));
    // A mark on the window: a reload would lose it.
    await inbox.evaluate(() => { window.belfryNotReloaded = true; });
    return { unread: n, ids };
  });
  log(`unread before: ${before.unread}, items shown: ${before.ids.length}`);

  // 3. Trigger a mention of the recipient (in-app only: no email address, so no fallback).
  const document_ = `Browser test plan ${Date.now()}`;
  const triggered = await step('trigger a mention', async () => {
    const payload = {
      author: 'Ada',
      document: document_,
      url: 'https://example.com/docs/browser-test',
      mentioned: [{ id: RECIPIENT, name: 'Browser' }],
    };
    const res = await api('POST', '/v1/events', {
      body: { notifier: 'mention', payload },
      headers: { 'Idempotency-Key': `browser-test-${Date.now()}-${Math.random().toString(36).slice(2)}` },
    });
    return expectStatus(res, 201, 'POST /v1/events');
  });
  const planned = (triggered.notifications || []).flatMap((n) => n.deliveries || []);
  const inApp = planned.find((d) => d.channel === 'in-app' && d.recipient_id === RECIPIENT);
  if (!inApp) fail(`the trigger planned no in-app delivery for ${RECIPIENT}: ${JSON.stringify(triggered)}`);
  log(`event ${triggered.event_id}, in-app delivery ${inApp.id} (${inApp.status})`);

  // 4. The item arrives on the open page, unread, and the count goes up.
  const itemId = await step('see the new item arrive live', async () => {
    const id = await until(inbox, 'a new unread inbox item', (known) => {
      const li = [...document.querySelectorAll('[data-testid="inbox-item"]')].find((l) => !known.includes(l.dataset.id));
      return li && li.dataset.read === 'false' ? li.dataset.id : null;
    }, before.ids);
    const text = await inbox.locator(`[data-testid="inbox-item"][data-id="${id}"]`).textContent();
    if (!text.includes(`Ada mentioned you in ${document_}`)) fail(`the new item reads ${JSON.stringify(text)}`);
    await until(inbox, `unread-count ${before.unread + 1}`,
      (n) => document.querySelector('[data-testid="unread-count"]').textContent.trim() === String(n), before.unread + 1);
    if (!(await inbox.evaluate(() => window.belfryNotReloaded === true))) fail('the page reloaded');
    return id;
  });

  // 5. Mark it read on the page.
  await step('mark the item read', async () => {
    const li = `[data-testid="inbox-item"][data-id="${itemId}"]`;
    await inbox.locator(`${li} [data-testid="mark-read"]`).click({ timeout: STEP_MS });
    await until(inbox, 'data-read="true"',
      (sel) => document.querySelector(sel)?.dataset.read === 'true', li);
    await until(inbox, `unread-count ${before.unread}`,
      (n) => document.querySelector('[data-testid="unread-count"]').textContent.trim() === String(n), before.unread);
  });
  await step('screenshot the inbox', () => screenshot('inbox'));

  // 6. The console: plugins, the delivery's explanation with the read in its timeline, filters.
  const deliveryId = await step('find the delivery of the item', async () => {
    const page = expectStatus(await api('GET', '/v1/inbox?filter=all&limit=100', { bearer: token }), 200, 'GET /v1/inbox');
    const item = (page.items || []).find((i) => i.id === itemId);
    if (!item) fail(`item ${itemId} is not in GET /v1/inbox`);
    if (item.delivery_id !== inApp.id) fail(`item ${itemId} is of delivery ${item.delivery_id}, the trigger planned ${inApp.id}`);
    if (!item.read || !item.read_at) fail(`item ${itemId} is not read on the server: ${JSON.stringify(item)}`);
    return item.delivery_id;
  });

  const console_ = await step('open the console on the delivery', async () => {
    const page = await openPage('console',
      `${BASE}/#key=${encodeURIComponent(KEY)}&delivery=${encodeURIComponent(deliveryId)}`);
    await until(page, 'the mention plugin in the plugins section', () => {
      const err = document.querySelector('[data-testid="error"]')?.textContent.trim();
      if (err) return 'error:' + err;
      return [...document.querySelectorAll('[data-testid="plugins"] [data-testid="plugin"]')]
        .some((p) => p.dataset.name === 'mention');
    });
    return page;
  });
  await step(`see "${INBOX_READ}" in the delivery's timeline`, async () => {
    await until(console_, `a timeline entry "${INBOX_READ}"`, (kind) => {
      const err = document.querySelector('[data-testid="error"]')?.textContent.trim();
      if (err) return 'error:' + err;
      const ol = document.querySelector('ol[data-testid="timeline"]');
      return !!ol && [...ol.children].some((li) => li.textContent.includes(kind));
    }, INBOX_READ);
    const kinds = await console_.$$eval('ol[data-testid="timeline"] > li', (lis) => lis.map((li) => li.dataset.kind));
    for (const k of ['event.received', 'inbox.written', INBOX_READ]) {
      if (!kinds.includes(k)) fail(`the timeline has no "${k}" entry: ${kinds.join(', ')}`);
    }
    const text = await console_.locator('[data-testid="explain"]').textContent();
    if (!text.includes('mention@')) fail('the explanation names no mention@VERSION plugin reference');
  });

  const status = await step('read the delivery status', async () => {
    const d = expectStatus(await api('GET', `/v1/deliveries/${encodeURIComponent(deliveryId)}`), 200, 'GET /v1/deliveries/{id}');
    return d.status;
  });
  await step(`filter the deliveries by status "${status}" and channel "in-app"`, async () => {
    const options = await console_.$$eval('[data-testid="filter-status"] option', (os) => os.map((o) => o.value));
    if (!options.includes(status)) fail(`the status filter offers no "${status}" (it has: ${options.join(', ')})`);
    const check = ([attr, want, id]) => {
      const err = document.querySelector('[data-testid="error"]')?.textContent.trim();
      if (err) return 'error:' + err;
      const rows = [...document.querySelectorAll('[data-testid="delivery-row"]')];
      if (!rows.some((r) => r.dataset.id === id)) return null;
      const other = rows.find((r) => r.dataset[attr] !== want);
      return other ? `error:a row of ${attr} "${other.dataset[attr]}" is listed under "${want}"` : rows.length;
    };
    await console_.selectOption('[data-testid="filter-status"]', status, { timeout: STEP_MS });
    const n = await until(console_, `rows of status "${status}" only`, check, ['status', status, deliveryId]);
    await console_.selectOption('[data-testid="filter-channel"]', 'in-app', { timeout: STEP_MS });
    const m = await until(console_, 'rows of channel "in-app" only', check, ['channel', 'in-app', deliveryId]);
    log(`${n} row(s) of status ${status}; ${m} of them in-app`);
  });
  await step('explain the delivery by clicking its row', async () => {
    // Clear the shown story first, so the click is what brings it back.
    await console_.evaluate(() => document.querySelector('ol[data-testid="timeline"]').replaceChildren());
    await console_.locator(`[data-testid="delivery-row"][data-id="${deliveryId}"]`).click({ timeout: STEP_MS });
    await until(console_, `"${INBOX_READ}" after the click`, (kind) =>
      [...document.querySelectorAll('ol[data-testid="timeline"] > li')].some((li) => li.textContent.includes(kind)),
    INBOX_READ);
  });
  await step('screenshot the console', () => screenshot('console'));
  checkPageProblems();
}

const overall = setTimeout(() => {
  console.error(`browser test FAILED: the whole run took over ${TOTAL_MS / 1000} s`);
  process.exit(1);
}, TOTAL_MS);

let code = 0;
try {
  await main();
  console.log('browser test passed');
} catch (e) {
  code = 1;
  console.error(`browser test FAILED: ${e.expected ? e.message : e.stack || e}`);
  if (pageProblems.length) console.error(`page problems:\n  ${pageProblems.join('\n  ')}`);
  if (SHOTS) {
    for (const name of Object.keys(pages)) {
      try {
        mkdirSync(SHOTS, { recursive: true });
        await pages[name].screenshot({ path: join(SHOTS, `${name}-failed.png`), fullPage: true, timeout: 3000 });
      } catch { /* best effort */ }
    }
  }
} finally {
  if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  clearTimeout(overall);
}
process.exit(code);
