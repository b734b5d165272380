import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import type * as oauth from 'oauth4webapi';
import type { Browser } from 'playwright-core';

import { isLatchkeyError } from '../../src/errors.js';
import { authorizationCodeFlow } from '../../src/login/authorization-code.js';
import type { ClientContext } from '../../src/oauth/client-context.js';
import { startRedirectReceiver } from '../../src/login/redirect-receiver.js';
import { discover, startAuthorizationServer, type TestAuthorizationServer } from '../harness/index.js';
import { launchChromium, skipWithoutChromium } from '../support/chromium.js';
import { publicClientContext } from '../support/public-client.js';

const ARTIFACTS = join(process.cwd(), 'test-results');
const SERVER = 'http://127.0.0.1:9/mcp';

/**
 * The browser login in a real headless Chromium: the AS's own login and consent pages, then
 * latchkey's loopback result page, which is screenshotted.
 */
describe('authorization code + PKCE in headless Chromium', { skip: skipWithoutChromium() }, () => {
  let as: TestAuthorizationServer;
  let browser: Browser;
  let ctx: ClientContext;

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300 });
    as.addResource(SERVER);
    browser = await launchChromium();
    ctx = await clientContext(as);
    await mkdir(ARTIFACTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await as?.close();
  });

  it('logs in through the real pages and shows which server was authorized', async () => {
    const receiver = await startRedirectReceiver({ server: SERVER });
    const page = await browser.newPage();
    let opened = 0;
    try {
      const flow = authorizationCodeFlow({
        ctx,
        server: SERVER,
        receiver,
        resource: SERVER,
        scope: as.scope,
        timeoutMs: 60_000,
        requestTimeoutMs: 10_000,
        openBrowser: async (url) => {
          opened++;
          await page.goto(url);
        },
      });
      // The AS's login page, then its consent page, as a user would see them.
      await page.waitForSelector('input[name="login"]');
      await page.fill('input[name="login"]', 'alice');
      await page.fill('input[name="password"]', 'test');
      await page.click('button[type="submit"]');
      await page.waitForSelector('button[type="submit"]');
      await page.click('button[type="submit"]');
      const result = await flow;
      await page.waitForSelector('h1');
      assert.equal(await page.textContent('h1'), 'Signed in');
      assert.match((await page.textContent('body')) ?? '', /127\.0\.0\.1:9\/mcp/);
      assert.match(page.url(), /^http:\/\/127\.0\.0\.1:\d+\/callback\?/);
      const shot = join(ARTIFACTS, 'browser-login.png');
      await page.screenshot({ path: shot });
      assert.ok(existsSync(shot) && statSync(shot).size > 1000, 'a screenshot was taken');

      assert.equal(opened, 1);
      assert.equal(typeof result.response.access_token, 'string');
      const info = await as.introspect(result.response.access_token);
      assert.equal(info.active, true);
      assert.equal(info.aud, SERVER, 'the token is bound to the resource that was sent');
      assert.equal(as.counters.count('authorization_code', 'ok'), 1);
    } finally {
      receiver.close();
      await page.close();
    }
  });

  it('denied consent gives a typed error naming the server and a failure page', async () => {
    const receiver = await startRedirectReceiver({ server: SERVER });
    const page = await browser.newPage();
    try {
      const flow = authorizationCodeFlow({
        ctx,
        server: SERVER,
        receiver,
        resource: SERVER,
        scope: as.scope,
        timeoutMs: 60_000,
        requestTimeoutMs: 10_000,
        openBrowser: async (url) => void (await page.goto(url)),
      });
      const outcome = flow.then(
        () => undefined,
        (error: unknown) => error,
      );
      await page.waitForSelector('input[name="login"]');
      await page.fill('input[name="login"]', 'bob');
      await page.fill('input[name="password"]', 'test');
      await page.click('button[type="submit"]');
      await page.waitForSelector('a[href*="abort"]');
      await page.click('a[href*="abort"]');
      const error = await outcome;
      assert.ok(isLatchkeyError(error));
      assert.equal(error.code, 'CANCELLED');
      assert.equal(error.server, SERVER);
      await page.waitForSelector('h1');
      assert.equal(await page.textContent('h1'), 'Sign-in failed');
    } finally {
      receiver.close();
      await page.close();
    }
  });
});

async function clientContext(as: TestAuthorizationServer): Promise<ClientContext> {
  const metadata: oauth.AuthorizationServer = await discover(as.issuer);
  return publicClientContext(metadata, as.clientId);
}
