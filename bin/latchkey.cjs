#!/usr/bin/env node
// The `latchkey` command. All logic is in src/cli/main.ts; dist/bin/latchkey.cjs is its bundle
// (scripts/bundle-cli.mjs): one CommonJS file, because a host pays this start on every launch
// of `latchkey proxy`, and Node 20 loads one CommonJS file much faster than many ES modules.
// compile-cache.cjs loads it with a V8 code cache, which spares compiling it again.
'use strict';
const path = require('node:path');
const { loadBundle } = require('./compile-cache.cjs');

const { exports: cli, flush } = loadBundle(
  path.join(__dirname, '..', 'dist', 'bin', 'latchkey.cjs'),
  process.argv.slice(2),
);
cli.quietOnBrokenPipe(process.argv[2]);
cli.main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  flush();
});
