import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type * as oauth from 'oauth4webapi';

import { isLatchkeyError, type LatchkeyError } from '../../src/errors.js';
import { authorizationCodeFlow, type AuthorizationCodeOptions } from '../../src/login/authorization-code.js';
import type { ClientContext } from '../../src/oauth/client-context.js';
import { startRedirectReceiver, stablePort } from '../../src/login/redirect-receiver.js';
import {
  completeAuthorization,
  discover,
  startAuthorizationServer,
  type TestAuthorizationServer,
} from '../harness/index.js';
import { publicClientContext } from '../support/public-client.js';

const SERVER = 'http://127.0.0.1:9/mcp';

/**
 * The browser flow's checks, with the harness's HTTP login driver standing in for the
 * browser so a test can tamper with what comes back to the loopback listener.
 */
describe('authorization code + PKCE: checks on the way back', () => {
  let as: TestAuthorizationServer;
  let metadata: oauth.AuthorizationServer;

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300 });
    as.addResource(SERVER);
    metadata = await discover(as.issuer);
  });
  after(() => as.close());

  const context = (override: Partial<oauth.AuthorizationServer> = {}): ClientContext =>
    publicClientContext({ ...metadata, ...override }, as.clientId, metadata.issuer);

  /**
   * Run the flow; `tamper` rewrites the callback URL before it is delivered. `thenGenuine`
   * delivers the untouched callback after the tampered one (a login that must survive it).
   */
  async function run(
    tamper: (callback: URL) => URL,
    ctx = context(),
    thenGenuine = false,
  ): Promise<{
    result?: Awaited<ReturnType<typeof authorizationCodeFlow>>;
    error?: LatchkeyError;
    page?: string;
    pages: { status: number; body: string }[];
    ignored: number;
  }> {
    const receiver = await startRedirectReceiver({ server: SERVER });
    const pages: { status: number; body: string }[] = [];
    let ignored = 0;
    const deliver = async (url: URL): Promise<void> => {
      const r = await fetch(url);
      pages.push({ status: r.status, body: await r.text() });
    };
    const options: AuthorizationCodeOptions = {
      ctx,
      server: SERVER,
      receiver,
      resource: SERVER,
      scope: as.scope,
      timeoutMs: 20_000,
      requestTimeoutMs: 10_000,
      onIgnoredResponse: (_reason, count) => void (ignored = count),
      openBrowser: async (url) => {
        const callback = await completeAuthorization(url, { subject: 'carol' });
        const genuine = new URL(callback.pathname + callback.search, receiver.redirectUri);
        const delivered = tamper(new URL(genuine));
        void (async () => {
          await deliver(delivered);
          if (thenGenuine) await deliver(genuine);
        })().catch(() => undefined);
      },
    };
    try {
      const result = await authorizationCodeFlow(options);
      await new Promise((r) => setTimeout(r, 50));
      return { result, pages, ignored, ...(pages[0] === undefined ? {} : { page: pages[0].body }) };
    } catch (error) {
      assert.ok(isLatchkeyError(error), String(error));
      await new Promise((r) => setTimeout(r, 50));
      return { error, pages, ignored, ...(pages[0] === undefined ? {} : { page: pages[0].body }) };
    } finally {
      receiver.close();
    }
  }

  it('redeems the code with PKCE and resource, and the token is audience-bound', async () => {
    const { result, error } = await run((u) => u);
    assert.equal(error, undefined);
    assert.ok(result !== undefined);
    const info = await as.introspect(result.response.access_token);
    assert.equal(info.active, true);
    assert.equal(info.aud, SERVER);
  });

  it('a wrong state is answered, counted and ignored: never redeemed, and the login goes on', async () => {
    const before = as.counters.count('authorization_code');
    const outcome = await run(
      (u) => {
        u.searchParams.set('state', 'forged');
        return u;
      },
      context(),
      true,
    );
    assert.equal(outcome.error, undefined, outcome.error?.message);
    assert.ok(outcome.result !== undefined, 'the genuine response still completes the login');
    assert.equal(outcome.ignored, 1);
    assert.equal(outcome.pages[0]?.status, 400);
    assert.match(outcome.pages[0]?.body ?? '', /Not this sign-in/);
    assert.match(outcome.pages[0]?.body ?? '', /still waiting/);
    assert.equal(outcome.pages[1]?.status, 200);
    assert.equal(
      as.counters.count('authorization_code'),
      before + 1,
      'only the genuine code reached the token endpoint',
    );
  });

  it('a wrong iss (RFC 9207) is ignored like a forged response, and its error fields are not echoed', async () => {
    const before = as.counters.count('authorization_code');
    const wrongIss = await run(
      (u) => {
        u.searchParams.set('iss', 'https://attacker.example');
        return u;
      },
      context(),
      true,
    );
    assert.equal(wrongIss.error, undefined);
    assert.equal(wrongIss.ignored, 1);
    assert.equal(as.counters.count('authorization_code'), before + 1);

    const mixed = await run(
      (u) => {
        const forged = new URL(u);
        forged.search = '';
        forged.searchParams.set('error', 'server_error');
        forged.searchParams.set('error_description', 'click https://evil.example to continue');
        forged.searchParams.set('state', u.searchParams.get('state') ?? '');
        forged.searchParams.set('iss', 'https://attacker.example');
        return forged;
      },
      context(),
      true,
    );
    assert.equal(mixed.error, undefined, 'a forged error does not end the login');
    assert.equal(mixed.ignored, 1);
    assert.doesNotMatch(mixed.pages[0]?.body ?? '', /evil|server_error/);
  });

  it('an AS that does not advertise S256 is refused before any browser opens', async () => {
    const receiver = await startRedirectReceiver({ server: SERVER });
    let opened = false;
    try {
      await assert.rejects(
        authorizationCodeFlow({
          ctx: context({ code_challenge_methods_supported: ['plain'] }),
          server: SERVER,
          receiver,
          resource: SERVER,
          scope: undefined,
          timeoutMs: 5_000,
          requestTimeoutMs: 5_000,
          openBrowser: async () => void (opened = true),
        }),
        (error: unknown) => isLatchkeyError(error) && error.server === SERVER && /S256/.test(error.message),
      );
      assert.equal(opened, false);
    } finally {
      receiver.close();
    }
  });

  it('the redirect listener binds 127.0.0.1 on a stable per-server port', async () => {
    const a = await startRedirectReceiver({ server: SERVER });
    a.close();
    const b = await startRedirectReceiver({ server: SERVER });
    try {
      assert.equal(a.redirectUri, b.redirectUri);
      assert.equal(new URL(a.redirectUri).port, String(stablePort(SERVER)));
      assert.equal(new URL(a.redirectUri).hostname, '127.0.0.1');
      // Taken port: falls back to an OS-chosen one instead of failing.
      const c = await startRedirectReceiver({ server: SERVER });
      assert.notEqual(c.redirectUri, b.redirectUri);
      c.close();
    } finally {
      b.close();
    }
  });

  it('times out cleanly and can be cancelled', async () => {
    const receiver = await startRedirectReceiver({ server: SERVER });
    const controller = new AbortController();
    const flow = authorizationCodeFlow({
      ctx: context(),
      server: SERVER,
      receiver,
      resource: SERVER,
      scope: undefined,
      timeoutMs: 60_000,
      requestTimeoutMs: 5_000,
      signal: controller.signal,
      openBrowser: async () => undefined,
    });
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(
      flow,
      (e: unknown) => isLatchkeyError(e) && e.code === 'CANCELLED' && e.server === SERVER,
    );
    receiver.close();
    const r2 = await startRedirectReceiver({ server: SERVER });
    const started = Date.now();
    await assert.rejects(
      authorizationCodeFlow({
        ctx: context(),
        server: SERVER,
        receiver: r2,
        resource: SERVER,
        scope: undefined,
        timeoutMs: 200,
        requestTimeoutMs: 5_000,
        openBrowser: async () => undefined,
      }),
      (e: unknown) => isLatchkeyError(e) && /did not finish/.test(e.message),
    );
    assert.ok(Date.now() - started < 5_000);
    r2.close();
  });
});
