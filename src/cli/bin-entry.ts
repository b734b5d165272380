/**
 * What bin/latchkey.cjs runs, bundled into dist/bin/ by scripts/bundle-cli.mjs so that a start
 * (above all the proxy's, which hosts pay on every launch) loads one file instead of ~120 modules.
 */
export { quietOnBrokenPipe } from './io.js';
export { main } from './main.js';
