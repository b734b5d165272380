#!/usr/bin/env node
// The `latchkey` command. All logic is in dist/cli/main.js (built from src/cli/main.ts).
import { quietOnBrokenPipe } from '../dist/cli/io.js';
import { main } from '../dist/cli/main.js';

quietOnBrokenPipe(process.argv[2]);
process.exitCode = await main(process.argv.slice(2));
