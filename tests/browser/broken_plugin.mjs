// The operator console (/) of a `belfry serve` whose plugin directory holds plugins that do
// not load: each is drawn as broken, with its name and the reason, before the plugins in force.
//
// Env: BELFRY_URL (http://127.0.0.1:PORT of a running `belfry serve`),
//      BELFRY_KEY (an API key of a tenant),
//      BELFRY_BROKEN (comma-separated names the page must show as broken),
//      BELFRY_SCREENSHOTS (optional directory: console-broken.png is saved there),
//      BELFRY_CHROMIUM (optional; default /usr/bin/chromium).
// The whole run is bounded at 60 s; any failure prints what failed and exits 1.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const BASE = (process.env.BELFRY_URL || '').replace(/\/+$/, '');
const KEY = process.env.BELFRY_KEY || '';
const BROKEN = (process.env.BELFRY_BROKEN || '').split(',').filter(Boolean).sort();
const SHOTS = process.env.BELFRY_SCREENSHOTS || '';
const CHROMIUM = process.env.BELFRY_CHROMIUM || '/usr/bin/chromium';

const overall = setTimeout(() => {
  console.error('broken-plugin browser test: timed out after 60 s');
  process.exit(1);
}, 60_000);

let browser = null;
try {
  if (!BASE || !KEY || BROKEN.length === 0) throw new Error('BELFRY_URL, BELFRY_KEY and BELFRY_BROKEN are required');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(`${BASE}/#key=${KEY}`);
  const cards = page.locator('[data-testid="broken-plugin"]');
  await cards.first().waitFor({ timeout: 10_000 });
  const shown = (await cards.evaluateAll((els) => els.map((e) => e.dataset.name))).sort();
  if (JSON.stringify(shown) !== JSON.stringify(BROKEN)) {
    throw new Error(`broken plugins shown: ${JSON.stringify(shown)}, expected ${JSON.stringify(BROKEN)}`);
  }
  for (const name of BROKEN) {
    const card = page.locator(`[data-testid="broken-plugin"][data-name="${name}"]`);
    const reason = (await card.locator('.reason').innerText()).trim();
    if (!reason) throw new Error(`${name}: no reason shown`);
    const heading = await card.locator('h3').innerText();
    if (!heading.includes('broken')) throw new Error(`${name}: heading does not say broken: ${heading}`);
  }
  // First, where an operator looks.
  const first = await page.locator('#plugins > :first-child').getAttribute('data-testid');
  if (first !== 'broken-plugin') throw new Error(`the first plugin card is ${first}, not a broken one`);
  // The plugins that loaded are still drawn.
  const loaded = await page.locator('[data-testid="plugin"]').count();
  if (loaded === 0) throw new Error('no loaded plugin is shown');
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true });
    await page.locator('#plugins').screenshot({ path: join(SHOTS, 'console-broken.png') });
  }
  if (problems.length) throw new Error(problems.join('; '));
  console.log(`broken-plugin browser test passed: ${shown.join(', ')} shown as broken beside ${loaded} loaded`);
} catch (e) {
  console.error(`broken-plugin browser test failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  clearTimeout(overall);
}
