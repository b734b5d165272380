#!/usr/bin/env node
// The `latchkey` command. All logic is in src/cli/main.ts; dist/bin/main.js is its bundle
// (scripts/bundle-cli.mjs), so that a start loads one file instead of ~120 modules.
import { main, quietOnBrokenPipe } from '../dist/bin/main.js';

quietOnBrokenPipe(process.argv[2]);
process.exitCode = await main(process.argv.slice(2));
