// The operator console (/) in a headless Chromium: a delivery's rendered content, and a replay
// run from the plugin list.
// - The console explains an email delivery and shows what was rendered (when the server
//   answers with `content`), then the same view with hostile content (the answer rewritten in
//   the browser): the subject is drawn as text, the html only in a frame sandboxed with no
//   permission, its script never runs and none of its elements reach the console's DOM.
// - "Replay a candidate…" beside the notifier: with the console's tenant key the server's 403
//   is shown; with the admin key given in the form, the summary and the differences table.
//
// Env: BELFRY_URL (http://127.0.0.1:PORT of a running `belfry serve`),
//      BELFRY_KEY (an API key of a tenant), BELFRY_ADMIN_KEY (an admin key),
//      BELFRY_DELIVERY (an email delivery of that tenant, already rendered),
//      BELFRY_CANDIDATE (a package archive of the notifier BELFRY_PLUGIN that changes content),
//      BELFRY_PLUGIN (the notifier's name), BELFRY_SCREENSHOTS (optional directory),
//      BELFRY_CHROMIUM (optional; default /usr/bin/chromium).
// Each step is bounded at 10 s and the run at 60 s; any failure prints what failed and exits 1.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const BASE = (process.env.BELFRY_URL || '').replace(/\/+$/, '');
const KEY = process.env.BELFRY_KEY || '';
const ADMIN = process.env.BELFRY_ADMIN_KEY || '';
const DELIVERY = process.env.BELFRY_DELIVERY || '';
const CANDIDATE = process.env.BELFRY_CANDIDATE || '';
const PLUGIN = process.env.BELFRY_PLUGIN || '';
const SHOTS = process.env.BELFRY_SCREENSHOTS || '';
const CHROMIUM = process.env.BELFRY_CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 10_000;

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const problems = [];

function fail(message) {
  throw new Error(message);
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

async function getJson(path) {
  const res = await fetch(BASE + path, {
    headers: { Authorization: `Bearer ${KEY}` },
    signal: AbortSignal.timeout(STEP_MS),
  });
  if (!res.ok) fail(`GET ${path}: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return res.json();
}

/** Waits for `fn(arg)` in the page to be truthy; a string starting with `error:` fails. */
async function until(page, what, fn, arg) {
  let handle;
  try {
    handle = await page.waitForFunction(fn, arg, { timeout: STEP_MS - 1000, polling: 100 });
  } catch (e) {
    const shown = await page.locator('[data-testid="error"]').textContent({ timeout: 1000 }).catch(() => '');
    fail(`waiting for ${what}: ${e.message.split('\n')[0]}${shown ? ` (page error box: ${shown})` : ''}`);
  }
  const value = await handle.jsonValue();
  if (typeof value === 'string' && value.startsWith('error:')) fail(`${what}: ${value.slice(6).trim()}`);
  return value;
}

const HOSTILE = {
  channel: 'email',
  subject: '<b id="pwn-subject">bold?</b>',
  html: '<script>parent.document.title = "pwned"; document.title = "pwned";</script>' +
        '<p id="pwn">hello from the email</p><img src="x" onerror="parent.document.title = \'pwned\'">',
  text: 'plain <i id="pwn-text">text</i>',
};

async function main() {
  if (!BASE || !KEY || !ADMIN || !DELIVERY || !CANDIDATE || !PLUGIN) {
    fail('BELFRY_URL, BELFRY_KEY, BELFRY_ADMIN_KEY, BELFRY_DELIVERY, BELFRY_CANDIDATE and BELFRY_PLUGIN are required');
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (e) => problems.push(`uncaught ${e.message}`));
    const delivery = await step('read the delivery', () => getJson(`/v1/deliveries/${encodeURIComponent(DELIVERY)}`));

    // ---- the rendered content, as the server answers it ----
    await step('open the console on the delivery and see its rendered content', async () => {
      await page.goto(`${BASE}/#key=${KEY}&delivery=${encodeURIComponent(DELIVERY)}`, { timeout: STEP_MS });
      await until(page, 'the rendered content box', () =>
        !document.querySelector('[data-testid="content"]').hidden);
      const shown = await page.locator('[data-testid="content"]').innerText();
      // A sent delivery's record carries the content it was rendered to.
      if (!('content' in delivery)) fail(`GET /v1/deliveries/{id} has no content: ${JSON.stringify(delivery)}`);
      const c = delivery.content;
      if (!c || c.channel !== 'email') fail(`the delivery's content is not an email: ${JSON.stringify(c)}`);
      if (!shown.includes(c.subject)) fail(`the subject "${c.subject}" is not shown: ${shown}`);
      if (delivery.rendered_by && !shown.includes(delivery.rendered_by)) fail(`rendered_by is not shown: ${shown}`);
      if (c.html) {
        const inFrame = await page.frameLocator('[data-testid="content-html"]').locator('body').innerText({ timeout: STEP_MS });
        if (!inFrame.trim()) fail('the email html frame is empty');
      }
    });
    if (SHOTS) {
      mkdirSync(SHOTS, { recursive: true });
      await page.locator('[data-testid="content"]').screenshot({ path: join(SHOTS, 'console-content.png') });
    }

    // ---- hostile content: text, and a frame with no permissions ----
    await step('draw hostile content as text and in a sandboxed frame', async () => {
      await page.route(`**/v1/deliveries/${encodeURIComponent(DELIVERY)}`, (route) =>
        route.fulfill({ json: { ...delivery, content: HOSTILE, rendered_by: 'evil@1.0.0#x' } }));
      await page.evaluate(() => { document.getElementById('content').replaceChildren(); });
      await page.reload({ timeout: STEP_MS });
      await until(page, 'the hostile subject, as text', (subject) => {
        const box = document.querySelector('[data-testid="content"]');
        return !box.hidden && box.textContent.includes(subject);
      }, HOSTILE.subject);
      const frame = page.locator('[data-testid="content-html"]');
      const sandbox = await frame.getAttribute('sandbox');
      if (sandbox !== '') fail(`the html frame's sandbox is ${JSON.stringify(sandbox)}, not empty (no permission)`);
      const inFrame = await page.frameLocator('[data-testid="content-html"]').locator('#pwn').innerText({ timeout: STEP_MS });
      if (inFrame !== 'hello from the email') fail(`the frame shows ${JSON.stringify(inFrame)}`);
      // Let an onerror or a script have its chance, then look.
      await page.waitForTimeout(300);
      const leaked = await page.evaluate(() => ({
        title: document.title,
        elements: ['pwn', 'pwn-subject', 'pwn-text'].filter((id) => document.getElementById(id)),
        frameReadable: (() => {
          try { return !!document.querySelector('[data-testid="content-html"]').contentDocument; } catch { return false; }
        })(),
      }));
      if (leaked.title === 'pwned') fail('a script of the email html ran');
      if (leaked.elements.length) fail(`email elements reached the console's DOM: ${leaked.elements.join(', ')}`);
      if (leaked.frameReadable) fail('the html frame shares the console origin');
      await page.unroute(`**/v1/deliveries/${encodeURIComponent(DELIVERY)}`);
    });

    // ---- replay from the plugin list ----
    await step(`open "Replay a candidate…" beside ${PLUGIN}`, async () => {
      await page.locator(`[data-testid="plugin"][data-name="${PLUGIN}"] [data-testid="replay-open"]`).click({ timeout: STEP_MS });
      await until(page, 'the replay form', (name) => {
        const s = document.querySelector('[data-testid="replay"]');
        return !s.hidden && s.dataset.plugin === name;
      }, PLUGIN);
      await page.setInputFiles('[data-testid="replay-file"]', CANDIDATE);
      await page.fill('[data-testid="replay-since"]', '24h');
    });
    await step('a tenant key is refused, and the form says an admin key is needed', async () => {
      await page.click('[data-testid="replay-run"]');
      const text = await until(page, 'the replay error', () =>
        document.querySelector('[data-testid="replay-error"]')?.textContent);
      if (!text.includes('admin')) fail(`the error does not say an admin key is needed: ${text}`);
    });
    const summary = await step('replay with the admin key and see the summary and the differences', async () => {
      await page.fill('[data-testid="replay-key"]', ADMIN);
      await page.click('[data-testid="replay-run"]');
      const s = await until(page, 'the replay summary', () => {
        const err = document.querySelector('[data-testid="replay-error"]');
        if (err) return 'error:' + err.textContent;
        const p = document.querySelector('[data-testid="replay-summary"]');
        return p && { text: p.textContent, events: +p.dataset.events, changed: +p.dataset.changed };
      });
      if (!(s.events >= 1 && s.changed >= 1)) fail(`expected a changed event: ${s.text}`);
      if (!/\d+ events, \d+ changed, \d+ errors in the candidate/.test(s.text)) fail(`summary: ${s.text}`);
      const whats = await page.$$eval('[data-testid="replay-change"]', (rows) => rows.map((r) => r.dataset.what));
      if (!whats.includes('content')) fail(`no content difference in the table: ${whats.join(', ')}`);
      return s.text;
    });
    log(summary);
    if (SHOTS) await page.locator('[data-testid="replay"]').screenshot({ path: join(SHOTS, 'console-replay.png') });
    if (problems.length) fail(problems.join('; '));
  } finally {
    await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  }
}

const overall = setTimeout(() => {
  console.error('replay/content browser test FAILED: the whole run took over 60 s');
  process.exit(1);
}, 60_000);
let code = 0;
try {
  await main();
  console.log('replay/content browser test passed');
} catch (e) {
  code = 1;
  console.error(`replay/content browser test FAILED: ${e.message}`);
}
clearTimeout(overall);
process.exit(code);
