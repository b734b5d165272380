#!/usr/bin/env node
// The `latchkey` command. All logic is in src/cli/main.ts; dist/bin/latchkey.cjs is its bundle
// (scripts/bundle-cli.mjs): one CommonJS file, because a host pays this start on every launch
// of `latchkey proxy`, and Node 20 loads one CommonJS file much faster than many ES modules.
'use strict';
const { main, quietOnBrokenPipe } = require('../dist/bin/latchkey.cjs');

quietOnBrokenPipe(process.argv[2]);
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
