// The portal page of latchkey serve as a person uses it, in headless Chromium against the real
// oidc-provider AS and a real store (test/serve/portal-env.ts): the app asks for a portal link,
// the person connects through the AS's own pages, sees it connected, disconnects; and a
// connection the AS refused is restored through the page. Screenshots: test-results/serve-portal/.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { type PortalEnv, skipReason, startPortalEnv } from './portal-env.js';

describe('latchkey serve: the portal page in Chromium', { skip: skipReason() }, () => {
  let e: PortalEnv;
  before(async () => {
    e = await startPortalEnv();
  });
  after(async () => {
    await e?.close();
  });

  it('a person opens the link, connects at the AS, sees it connected, then disconnects: both tokens revoked', async () => {
    const link = await e.portalLink('alice');
    assert.equal(link.status, 201);
    const portalUrl = new URL(String(link.body['portal_url']));
    assert.equal(`${portalUrl.origin}${portalUrl.pathname}`, `${e.serve.publicUrl}/portal/open`);
    const expiresAt = Date.parse(String(link.body['expires_at']));
    assert.ok(Math.abs(expiresAt - (Date.now() + 300_000)) < 30_000, 'the link lives 5 minutes');

    const context = await e.browser.newContext();
    const page = await context.newPage();
    try {
      const landed = await page.goto(portalUrl.href);
      assert.equal(page.url(), `${e.serve.publicUrl}/`, 'the link redirects to the page');
      const headers = landed?.headers() ?? {};
      assert.match(
        headers['content-security-policy'] ?? '',
        /^default-src 'none'; style-src 'sha256-[^']+'; form-action 'self'/,
      );
      assert.equal(headers['x-frame-options'], 'DENY');
      assert.equal(headers['referrer-policy'], 'same-origin');
      assert.equal(headers['cache-control'], 'no-store');
      const [cookie] = await context.cookies();
      assert.equal(cookie?.name, 'latchkey_portal', 'http public URL: no __Host- prefix possible');
      assert.equal(cookie?.httpOnly, true);
      assert.equal(cookie?.sameSite, 'Lax');
      assert.ok(
        Math.abs((cookie?.expires ?? 0) * 1000 - (Date.now() + 3_600_000)) < 60_000,
        'a 1-hour session',
      );
      const demo = page.locator('section[data-upstream="demo"]');
      assert.equal(await demo.getAttribute('data-state'), 'none');
      assert.match((await demo.textContent()) ?? '', /Not connected/);
      assert.equal(await page.textContent('.who'), 'Signed in as alice.');
      await e.shot(page, '1-signed-in');

      await demo.locator('button', { hasText: 'Connect' }).click();
      await page.waitForSelector('input[name="login"]');
      assert.ok(page.url().startsWith(e.as.issuer), 'at the AS sign-in page');
      await e.shot(page, '2-as-login');
      await page.fill('input[name="login"]', 'alice-at-as');
      await page.fill('input[name="password"]', 'test');
      await page.click('button[type="submit"]');
      await page.waitForSelector('button[type="submit"]');
      await page.click('button[type="submit"]');
      await page.waitForSelector('section[data-upstream="demo"][data-state="connected"]');
      assert.ok(page.url().startsWith(`${e.serve.publicUrl}/?`), 'back on the page');
      assert.equal(await page.textContent('.notice'), 'Connected to demo.');
      assert.match(
        (await demo.textContent()) ?? '',
        /Connected — Working\..*Access expires \d{4}-\d\d-\d\d \d\d:\d\d UTC/,
      );
      await e.shot(page, '3-connected');

      const got = await e.token('alice');
      assert.equal(got.status, 200);
      assert.equal((await e.as.introspect(String(got.body['access_token']))).sub, 'alice-at-as');
      const held = (await e.store.listCredentials({ subject: 'alice' }))?.[0];
      assert.ok(held?.secrets.refreshToken !== undefined);

      const revocations = e.as.counters.count('revocation', 'ok');
      await demo.locator('button', { hasText: 'Disconnect' }).click();
      await page.waitForSelector('section[data-upstream="demo"][data-state="none"]');
      assert.equal(await page.textContent('.notice'), 'Disconnected from demo.');
      await e.shot(page, '4-disconnected');
      assert.equal(e.as.counters.count('revocation', 'ok') - revocations, 2);
      assert.equal((await e.as.introspect(held.secrets.accessToken)).active, false, 'access token revoked');
      assert.equal((await e.as.introspect(held.secrets.refreshToken)).active, false, 'refresh token revoked');
      assert.equal((await e.token('alice')).status, 409);
    } finally {
      await context.close();
    }
  });

  it('a connection the AS refused shows as needs-login with its error, and "Sign in again" restores it', async () => {
    e.as.setAccessTokenTtl(2);
    try {
      await e.connectByApi('lena', 'lena-at-as');
    } finally {
      e.as.setAccessTokenTtl(300);
    }
    await e.as.revokeGrants('lena-at-as');
    await new Promise((resolve) => setTimeout(resolve, 2_100)); // the 2-s token is now unusable
    assert.equal((await e.token('lena')).status, 409, 'the refresh was refused');

    const context = await e.browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(String((await e.portalLink('lena')).body['portal_url']));
      const demo = page.locator('section[data-upstream="demo"]');
      assert.equal(await demo.getAttribute('data-state'), 'needs-login');
      const text = (await demo.textContent()) ?? '';
      assert.match(text, /Needs login — The server no longer accepts this connection: sign in again\./);
      assert.match(text, /Access expired \d{4}-\d\d-\d\d \d\d:\d\d UTC\./);
      assert.match(text, /Last error \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\): .+LOGIN_REQUIRED/);
      await e.shot(page, '6-needs-login');
      await demo.locator('button', { hasText: 'Sign in again' }).click();
      await page.waitForSelector('input[name="login"]');
      await page.fill('input[name="login"]', 'lena-at-as');
      await page.fill('input[name="password"]', 'test');
      await page.click('button[type="submit"]');
      await page.waitForSelector('button[type="submit"]');
      await page.click('button[type="submit"]');
      await page.waitForSelector('section[data-upstream="demo"][data-state="connected"]');
      await e.shot(page, '7-reconnected');
      const got = await e.token('lena');
      assert.equal(got.status, 200, 'connected again');
      assert.equal((await e.as.introspect(String(got.body['access_token']))).sub, 'lena-at-as');
    } finally {
      await context.close();
    }
  });
});
