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
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/cli/bin-entry.js'],
  outfile: 'dist/bin/latchkey.cjs',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
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
