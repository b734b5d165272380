// The `latchkey` command as one CommonJS file (dist/bin/latchkey.cjs), built after tsc.
//
// Why one file, and why CommonJS: Node 20 spends most of a proxy's start loading modules.
// Unbundled, that was ~120 ES modules; an ES-module bundle split per command still loaded ~27
// chunks through the ESM loader. One CommonJS file goes through the CJS loader once, and
// esbuild leaves each command's imports of the packages below as require() calls inside that
// command's lazily initialized code, so a command still loads only what it runs. A/B on this
// machine, 15 alternating starts each: ~23 ms less from spawn to a ready proxy than the split
// ESM bundle (docs/proxy.md). The library entry points (dist/index.js and the subpaths) stay
// ES modules and unbundled: an embedder's bundler does its own work.
//
// Kept external, loaded from node_modules: better-sqlite3, pg and @napi-rs/keyring (native),
// the MCP SDK, zod and uqr (large, and only some commands need them), and oidc-provider (an
// ES module only package: esbuild keeps its dynamic import() as it is).
//
// No other import() may be left in the bundle: bin/compile-cache.cjs runs it as a vm.Script,
// where import() fails on Node 20 once the script comes from a code cache. The lazy
// import()s of node:https and @napi-rs/keyring become lazy require()s (requireInstead); the
// one of oidc-provider stays, and `latchkey demo`, its only user, starts without the cache.
import { readFileSync } from 'node:fs';

import { build } from 'esbuild';

const BUNDLE = 'dist/bin/latchkey.cjs';
const ALLOWED_DYNAMIC_IMPORTS = ['oidc-provider'];

/** Dynamic imports of these CommonJS-loadable modules are bundled as lazy require() calls. */
const requireInstead = {
  name: 'require-instead',
  setup(build) {
    build.onResolve({ filter: /^(node:https|@napi-rs\/keyring)$/ }, (args) =>
      args.kind === 'dynamic-import' ? { path: args.path, namespace: 'require-instead' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'require-instead' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: ['dist/cli/bin-entry.js'],
  outfile: BUNDLE,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  plugins: [requireInstead],
  external: [
    'better-sqlite3',
    'pg',
    '@napi-rs/keyring',
    '@modelcontextprotocol/sdk',
    'oidc-provider',
    'zod',
    'uqr',
  ],
  // version.ts finds package.json from its own URL; in the bundle that is the bundle's URL,
  // which sits at the same depth (dist/bin/ rather than dist/cli/).
  define: { 'import.meta.url': '__latchkeyBundleUrl' },
  banner: { js: "const __latchkeyBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
});

// Every import( in the bundle, literal or not, must be one of the allowed ones.
const text = readFileSync(BUNDLE, 'utf8');
const calls = [...text.matchAll(/(?<![\w.$])import\(([^)]{0,80})/g)].map((m) => m[1]?.trim() ?? '');
const unexpected = calls.filter(
  (argument) => !ALLOWED_DYNAMIC_IMPORTS.some((name) => argument === JSON.stringify(name)),
);
if (unexpected.length > 0) {
  console.error(`bundle-cli: import(${unexpected.join('), import(')}) left in ${BUNDLE}; see requireInstead`);
  process.exit(1);
}
