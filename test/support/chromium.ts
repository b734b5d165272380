// Headless Chromium (Debian's, driven by playwright-core) as every browser test starts it:
// the portal and seed tests, the browser login test, and the BROWSER stand-ins in
// test/fixtures and test/thirdparty.
import { existsSync } from 'node:fs';

import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-sync',
    ],
  });
}

/**
 * Why a browser suite is skipped, or false to run it: only when there is no Chromium and
 * LATCHKEY_TEST_NO_BROWSER=1 says that is expected; otherwise it runs and fails loudly
 * (CI must provide Chromium).
 */
export function skipWithoutChromium(): string | false {
  if (existsSync(CHROMIUM)) return false;
  if (process.env['LATCHKEY_TEST_NO_BROWSER'] === '1')
    return `no Chromium at ${CHROMIUM} (LATCHKEY_TEST_NO_BROWSER=1)`;
  return false;
}
