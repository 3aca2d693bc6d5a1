// Generates the contract's TypeScript declarations (guest side: what a plugin imports and what
// it must export) from wit/plugin@1 into sdk/js/types/<world>/, with jco's bindgen.
//
// jco's own `types`/`guest-types` commands read WIT through a WASI file-system shim that finds
// no file here (jco 1.35: "failed to read path for WIT ... os error 44"), so this script hands
// the WIT to the same bindgen as source text: the contract's files are one package, joined
// under its one `package` line.
import { readFileSync, readdirSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  $init,
  generateTypes,
} from '../node_modules/@bytecodealliance/jco-transpile/vendor/js-component-bindgen-component.js';

const here = dirname(fileURLToPath(import.meta.url));
const sdk = resolve(here, '..');
const witDir = resolve(process.argv[2] ?? join(sdk, '..', '..', 'wit', 'plugin@1'));
const outRoot = resolve(process.argv[3] ?? join(sdk, 'types'));

/** The contract's files as one WIT source: one `package` line, then every file's body. */
export function contractSource(dir) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.wit')).sort();
  if (files.length === 0) throw new Error(`no .wit files in ${dir}`);
  let pkg = null;
  const bodies = files.map((f) => {
    const text = readFileSync(join(dir, f), 'utf8');
    return text.replace(/^\s*package\s+([^;]+);/m, (_, name) => {
      if (pkg !== null && pkg !== name.trim()) {
        throw new Error(`${f} is package ${name.trim()}, the others ${pkg}`);
      }
      pkg = name.trim();
      return '';
    });
  });
  if (pkg === null) throw new Error(`no package line in ${dir}`);
  return `package ${pkg};\n${bodies.join('\n')}`;
}

await $init;
const source = contractSource(witDir);
rmSync(outRoot, { recursive: true, force: true });
for (const world of ['notifier', 'renderer', 'channel-adapter']) {
  const files = generateTypes(world, {
    wit: { tag: 'source', val: source },
    world,
    guest: true,
    tlaCompat: false,
    features: { tag: 'list', val: [] },
  });
  for (const [name, bytes] of files) {
    const path = join(outRoot, world, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, bytes);
  }
}
console.error(`types: wrote ${outRoot} from ${witDir}`);
