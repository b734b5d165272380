#!/usr/bin/env -S node --import tsx
// The user's browser for the third-party tests (BROWSER points here; run without a shell,
// argv[2] is the authorization URL): headless Chromium (Debian's, driven by playwright-core)
// opens it and, when the server shows a sign-in form (better-auth's login page), really
// fills in LK_TP_EMAIL / LK_TP_PASSWORD and submits it, then waits for latchkey's result
// page on the loopback callback. It gives up after LK_BROWSER_TIMEOUT_MS (default 30 s).
import { launchChromium } from '../support/chromium.js';

const url = process.argv[2];
if (url === undefined) process.exit(2);
const timeout = Number(process.env['LK_BROWSER_TIMEOUT_MS'] ?? 30_000);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(timeout);
  await page.goto(url);
  const atCallback = (u: URL): boolean => u.pathname === '/callback';
  if (!atCallback(new URL(page.url()))) {
    await page.waitForSelector('input[name="email"]');
    await page.fill('input[name="email"]', process.env['LK_TP_EMAIL'] ?? '');
    await page.fill('input[name="password"]', process.env['LK_TP_PASSWORD'] ?? '');
    await page.click('button[type="submit"]');
    await page.waitForURL(atCallback);
  }
  await page.waitForSelector('h1');
  process.stderr.write(`chromium: ${await page.textContent('h1')}\n`);
} finally {
  await browser.close();
}
