// The operator console (/) of a `belfry serve` where an uploaded `pager` adapter took chat
// over from `discord` (plugin directory), which had taken it from `log` (first-party), and
// `welcome` names the `fancy` renderer: the routes table and the renderer table say so.
//
// Env: BELFRY_URL (http://127.0.0.1:PORT of a running `belfry serve`),
//      BELFRY_KEY (an API key),
//      BELFRY_CHROMIUM (optional; default /usr/bin/chromium).
// The whole run is bounded at 60 s; any failure prints what failed and exits 1.

import { chromium } from 'playwright-core';

const BASE = (process.env.BELFRY_URL || '').replace(/\/+$/, '');
const KEY = process.env.BELFRY_KEY || '';
const CHROMIUM = process.env.BELFRY_CHROMIUM || '/usr/bin/chromium';

const overall = setTimeout(() => {
  console.error('routes browser test: timed out after 60 s');
  process.exit(1);
}, 60_000);

let browser = null;
try {
  if (!BASE || !KEY) throw new Error('BELFRY_URL and BELFRY_KEY are required');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(`${BASE}/#key=${KEY}`);
  const chat = page.locator('[data-testid="route"][data-channel="chat"]');
  await chat.waitFor({ timeout: 10_000 });
  const adapter = await chat.getAttribute('data-adapter');
  const reason = await chat.getAttribute('data-reason');
  if (adapter !== 'pager' || reason !== 'declared') {
    throw new Error(`chat is shown served by ${adapter} (${reason}), expected pager (declared)`);
  }
  const row = await chat.innerText();
  for (const want of ['pager replaces discord', 'log (default)', 'discord (declared)']) {
    if (!row.includes(want)) throw new Error(`the chat route row does not say "${want}": ${row}`);
  }
  // The log adapter's card no longer claims chat.
  const serves = await page.locator('[data-testid="plugin"][data-name="log"] [data-testid="serves"]').innerText();
  if (serves.includes('chat')) throw new Error(`the log card says it serves chat: ${serves}`);
  const welcome = page.locator('[data-testid="renderer-choice"][data-notifier="welcome"]');
  if ((await welcome.getAttribute('data-renderer')) !== 'fancy') {
    throw new Error(`welcome is not shown rendering with fancy: ${await welcome.innerText()}`);
  }
  if (problems.length) throw new Error(problems.join('; '));
  console.log('routes browser test passed: chat served by pager (declared), replacing log and discord; welcome via fancy');
} catch (e) {
  console.error(`routes browser test failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  clearTimeout(overall);
}
