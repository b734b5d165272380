// The `latchkey` command as one bundle (dist/bin/), built after tsc. Node 20 spends most of a
// proxy's start resolving, reading and linking ~120 small ES modules; bundled, the proxy
// reaches its first answer ~80 ms sooner (`npm run bench -- proxy`). Chunks are split per
// command, so a command still loads only what it runs. The library entry points (dist/index.js
// and the subpaths) stay unbundled: an embedder's bundler does its own work.
//
// Native and heavy packages stay external, loaded from node_modules as before: better-sqlite3, pg
// and @napi-rs/keyring (native), the MCP SDK, oidc-provider, zod and uqr (loaded only by the
// commands that need them, and large).
import { build } from 'esbuild';

await build({
  entryPoints: { main: 'dist/cli/bin-entry.js' },
  outdir: 'dist/bin',
  bundle: true,
  splitting: true,
  format: 'esm',
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
  // commander is CommonJS: its require() of node built-ins needs a real require in ESM.
  banner: {
    js: "import { createRequire as __latchkeyRequire } from 'node:module'; const require = __latchkeyRequire(import.meta.url);",
  },
});
