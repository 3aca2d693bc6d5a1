#!/usr/bin/env node
// belfry-build-js: builds a belfry plugin written in JavaScript or TypeScript into a WebAssembly
// component with componentize-js, against the contract in wit/plugin@1, and optionally lays
// out the package directory belfry loads (`NAME/manifest.toml`, `NAME/plugin.wasm`,
// `NAME/assets/**`).
//
//   belfry-build-js [PLUGIN_DIR] [--entry src/index.js] [-o OUT.wasm] [--package DIR] [--wit DIR]
//
// PLUGIN_DIR (default: the current directory) holds manifest.toml; its `kind` picks the world
// and its `wit` must be a 1.x version. The entry and what it imports (relative files and
// `@belfry/plugin-sdk`) are bundled into one module first, because componentize-js evaluates
// the module with only the entry's own directory readable.
import { componentize } from '@bytecodealliance/componentize-js';
import { rolldown } from 'rolldown';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SDK = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WORLDS = {
  // Notifiers and renderers get no network: their components must not import wasi:http, which
  // componentize-js adds for fetch() unless told not to.
  notifier: ['http', 'fetch-event'],
  renderer: ['http', 'fetch-event'],
  'channel-adapter': ['fetch-event'],
};

function fail(message) {
  console.error(`belfry-build-js: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { dir: '.', entry: null, out: null, pkg: null, wit: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i] ?? fail(`${a} needs a value`);
    if (a === '--entry') opts.entry = next();
    else if (a === '-o' || a === '--out') opts.out = next();
    else if (a === '--package') opts.pkg = next();
    else if (a === '--wit') opts.wit = next();
    else if (a === '-h' || a === '--help') {
      console.log('usage: belfry-build-js [PLUGIN_DIR] [--entry FILE] [-o OUT.wasm] [--package DIR] [--wit DIR]');
      process.exit(0);
    } else if (a.startsWith('-')) fail(`unknown option ${a}`);
    else opts.dir = a;
  }
  return opts;
}

/** The top-level `key = "value"` pairs of a manifest (the ones before any [table]). */
export function manifestKeys(text) {
  const keys = {};
  for (const line of text.split('\n')) {
    if (/^\s*\[/.test(line)) break;
    const m = line.match(/^\s*([A-Za-z_]+)\s*=\s*"([^"]*)"\s*(#.*)?$/);
    if (m) keys[m[1]] = m[2];
  }
  return keys;
}

const opts = parseArgs(process.argv.slice(2));
const dir = resolve(opts.dir);
const manifestPath = join(dir, 'manifest.toml');
if (!existsSync(manifestPath)) fail(`no manifest.toml in ${dir}`);
const manifest = manifestKeys(readFileSync(manifestPath, 'utf8'));
for (const k of ['name', 'kind', 'wit']) if (!manifest[k]) fail(`${manifestPath}: no ${k} = "..."`);
const disable = WORLDS[manifest.kind];
if (!disable) fail(`${manifestPath}: kind = "${manifest.kind}" is not one of ${Object.keys(WORLDS).join(', ')}`);
if (!/^1\.\d+\.\d+$/.test(manifest.wit)) {
  fail(`${manifestPath}: wit = "${manifest.wit}", but this SDK builds against contract 1.x (wit = "1.0.0")`);
}
const witDir = resolve(opts.wit ?? join(SDK, '..', '..', 'wit', 'plugin@1'));
if (!existsSync(join(witDir, 'types.wit'))) fail(`no contract at ${witDir} (--wit DIR)`);

let entry = opts.entry ? resolve(dir, opts.entry) : null;
if (!entry) {
  entry = ['src/index.js', 'src/index.ts', 'index.js', 'index.ts'].map((f) => join(dir, f)).find(existsSync);
  if (!entry) fail(`no src/index.js or src/index.ts in ${dir} (--entry FILE)`);
}
if (!existsSync(entry)) fail(`no entry ${entry}`);

const work = mkdtempSync(join(tmpdir(), 'belfry-build-js-'));
try {
  const bundle = await rolldown({
    input: entry,
    external: [/^(belfry|wasi):/],
    resolve: { alias: { '@belfry/plugin-sdk': join(SDK, 'src', 'index.js') } },
    logLevel: 'warn',
  });
  await bundle.write({ dir: work, format: 'esm', entryFileNames: 'plugin.js', codeSplitting: false });
  await bundle.close();

  const started = Date.now();
  const { component } = await componentize({
    sourcePath: join(work, 'plugin.js'),
    witPath: witDir,
    worldName: manifest.kind,
    disableFeatures: disable,
  });
  const out = resolve(opts.out ?? join(dir, 'target', `${manifest.name}.wasm`));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, component);
  console.error(`belfry-build-js: ${manifest.name} (${manifest.kind}, wit ${manifest.wit}) -> ${out} (${(component.length / 1048576).toFixed(1)} MiB, ${((Date.now() - started) / 1000).toFixed(1)} s)`);

  if (opts.pkg) {
    const pkg = resolve(opts.pkg);
    rmSync(pkg, { recursive: true, force: true });
    mkdirSync(pkg, { recursive: true });
    cpSync(manifestPath, join(pkg, 'manifest.toml'));
    writeFileSync(join(pkg, 'plugin.wasm'), component);
    if (existsSync(join(dir, 'assets'))) cpSync(join(dir, 'assets'), join(pkg, 'assets'), { recursive: true });
    console.error(`belfry-build-js: package ${pkg} (${basename(pkg)}/manifest.toml, plugin.wasm${existsSync(join(dir, 'assets')) ? ', assets/' : ''})`);
  }
} catch (e) {
  fail(e?.stack ?? String(e));
} finally {
  rmSync(work, { recursive: true, force: true });
}
