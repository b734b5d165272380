// Issue 17's seed scenario, as Open WebUI would live it, end to end with real parts: the real
// oidc-provider AS behind the fault proxy (2-s access tokens, rotating refresh tokens), the
// real SDK MCP server, a real store (SQLite, or PostgreSQL with LATCHKEY_TEST_STORE=postgres),
// `latchkey serve` with its refresher on, the SDK Client as the host over Streamable HTTP, an
// SSE client on /v1/events, and headless Chromium for the person who signs in again.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';

import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Browser } from 'playwright-core';

import type { RunningServe } from '../../src/serve/server.js';
import type { ServeStore } from '../../src/store/serve-contract.js';
import type { FaultProxy, TestAuthorizationServer } from '../harness/index.js';
import { rpcError, textOf } from './mcp-env.js';
import { launchChromium } from '../support/chromium.js';
import { skipReason } from './portal-env.js';
import { type ServeEnv, startServeEnv } from './serve-env.js';
import { SseReader } from './sse-reader.js';

const TTL_S = 2;
const SUBJECT = 'owui-user-7';
const AS_USER = 'carol-at-as';

interface Connection {
  upstream: string;
  state: string;
  last_error: { code: string } | null;
}

/** Polls `probe` every `everyMs` until it answers; fails after `timeoutMs`. */
async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await probe();
    if (answer !== undefined) return answer;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

describe('latchkey serve: the Open WebUI seed', { skip: skipReason() }, () => {
  let env: ServeEnv;
  let asProxy: FaultProxy;
  let as: TestAuthorizationServer;
  let store: ServeStore;
  let serve: RunningServe;
  let browser: Browser;
  let events: SseReader;
  const hosts: Client[] = [];
  const keyed = (): Record<string, string> => ({ authorization: `Bearer ${env.key}` });

  before(async () => {
    env = await startServeEnv({
      accessTokenTtl: TTL_S,
      rotateRefreshToken: true,
      faultProxy: true,
      appKeyLabel: 'open-webui',
      serve: { refresher: true },
    });
    assert.ok(env.asProxy !== undefined);
    asProxy = env.asProxy;
    ({ as, store, serve } = env);
    browser = await launchChromium();
    events = await SseReader.open(`${serve.url}/v1/events?subject=${SUBJECT}`, keyed());
    assert.equal(events.status, 200);
  });

  after(async () => {
    await events?.close();
    await browser?.close();
    await env?.close();
  });

  async function host(): Promise<Client> {
    const client = await env.host(`/v1/subjects/${SUBJECT}/mcp/demo`, keyed());
    hosts.push(client);
    return client;
  }

  async function demoConnection(): Promise<Connection | undefined> {
    const listed = await fetch(`${serve.url}/v1/subjects/${SUBJECT}/connections`, { headers: keyed() });
    assert.equal(listed.status, 200);
    const { connections } = (await listed.json()) as { connections: Connection[] };
    return connections.find((c) => c.upstream === 'demo');
  }

  async function generation(): Promise<number> {
    const [cred] = await store.listCredentials({ subject: SUBJECT });
    assert.ok(cred !== undefined, 'the credential is kept');
    return cred.generation;
  }

  it('1. the user connects through the web flow (the app starts it, the browser signs in at the AS)', async () => {
    await env.connect(SUBJECT, AS_USER, { returnTo: 'https://owui.example.com/settings/connections' });
    assert.equal((await demoConnection())?.state, 'connected');
    await events.waitFor((m) => m.event === 'connected');
  });

  it('2. idle for several token lifetimes with rotation: the refresher keeps it fresh, the first MCP call works with no sign-in', async () => {
    const signIns = as.counters.count('authorization_code', 'ok');
    const refreshes = as.counters.count('refresh_token', 'ok');
    const before = await generation();
    await sleep(TTL_S * 4 * 1000);
    // Nobody called during the idle time: only the refresher can have refreshed.
    const refreshedIdle = as.counters.count('refresh_token', 'ok') - refreshes;
    assert.ok(refreshedIdle >= 2, `the refresher refreshed while idle (${refreshedIdle} times)`);
    // The refresher keeps refreshing 2-s tokens, so one may be at the AS but not yet stored:
    // compare the two at a moment when none is in flight.
    await until(
      'one stored generation per refresh at the AS',
      async () => {
        const atAs = as.counters.count('refresh_token', 'ok') - refreshes;
        return (await generation()) - before === atAs ? true : undefined;
      },
      10_000,
      20,
    );
    const client = await host();
    assert.equal(textOf(await client.callTool({ name: 'whoami' })), AS_USER);
    assert.equal(as.counters.count('authorization_code', 'ok'), signIns, 'no new sign-in');
    assert.equal(as.counters.count('refresh_token', 'invalid_grant'), 0);
    await events.waitFor((m) => m.event === 'refreshed');
  });

  it('3. a transient refresh failure at the AS keeps the connection (retrying), and it recovers by itself', async () => {
    const fault = asProxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      action: { type: 'status', status: 503, body: '{"error":"temporarily_unavailable"}' },
    });
    // Long enough for the held token to run out while every refresh fails.
    await sleep(TTL_S * 2 * 1000 + 500);
    assert.ok(fault.hits > 0, 'the refresher kept asking the AS');
    const during = await demoConnection();
    assert.ok(during !== undefined, 'the connection is kept');
    assert.equal(during.state, 'retrying');
    assert.equal((await store.listCredentials({ subject: SUBJECT })).length, 1, 'nothing deleted');
    const retrying = await events.waitFor((m) => m.event === 'retrying');
    assert.equal(retrying.data['upstream'], 'demo');
    const client = hosts[0]!;
    const error = await rpcError(client.callTool({ name: 'whoami' }));
    assert.equal(error.code, -32041, 'a transient error, not a login');
    assert.equal((error.data as { latchkey?: { retryable?: boolean } }).latchkey?.retryable, true);
    assert.ok(!error.message.includes('/?connect='), 'not told to connect again');
    asProxy.clear(fault);
    await until(
      'the connection to be connected again',
      async () => {
        const state = (await demoConnection())?.state;
        return state === 'connected' ? true : undefined;
      },
      30_000,
    );
    assert.equal(textOf(await client.callTool({ name: 'whoami' })), AS_USER, 'the same host works again');
    assert.equal(as.counters.count('refresh_token', 'invalid_grant'), 0, 'no refresh token was lost');
    assert.equal(events.messages.filter((m) => m.event === 'needs-login').length, 0);
  });

  it('4. a permanent failure (grant revoked at the AS): needs-login in the API, an event, and the connect URL on MCP', async () => {
    assert.ok((await as.revokeGrants(AS_USER)) > 0);
    // The refresher meets invalid_grant at its next refresh, within a token lifetime.
    const needsLogin = await events.waitFor((m) => m.event === 'needs-login', TTL_S * 5 * 1000);
    assert.equal(needsLogin.data['subject'], SUBJECT);
    assert.equal(needsLogin.data['upstream'], 'demo');
    assert.equal(needsLogin.data['error'], 'invalid_grant');
    assert.equal(
      needsLogin.data['connect_url'],
      `${serve.publicUrl}/v1/subjects/${SUBJECT}/connections/demo`,
    );
    const listed = await demoConnection();
    assert.equal(listed?.state, 'needs-login');
    assert.ok(listed?.last_error !== null, 'the last error is shown');
    const error = await rpcError(hosts[0]!.callTool({ name: 'whoami' }));
    assert.equal(error.code, -32040);
    assert.ok(error.message.includes(`${serve.publicUrl}/?connect=demo`), error.message);
    const data = error.data as { latchkey: { code: string; upstream: string } };
    assert.equal(data.latchkey.code, 'LOGIN_REQUIRED');
    assert.equal(data.latchkey.upstream, 'demo');
    assert.equal((await store.listCredentials({ subject: SUBJECT })).length, 1, 'kept for the person to see');
  });

  it('5. the person signs in again on the portal page (Chromium); the next MCP call works', async () => {
    const link = await fetch(`${serve.url}/v1/subjects/${SUBJECT}/portal`, {
      method: 'POST',
      headers: keyed(),
    });
    assert.equal(link.status, 201);
    const { portal_url } = (await link.json()) as { portal_url: string };
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(portal_url);
      const demo = page.locator('section[data-upstream="demo"]');
      assert.equal(await demo.getAttribute('data-state'), 'needs-login');
      await demo.locator('button', { hasText: 'Sign in again' }).click();
      await page.waitForSelector('input[name="login"]');
      assert.ok(page.url().startsWith(as.issuer), 'at the AS sign-in page');
      await page.fill('input[name="login"]', AS_USER);
      await page.fill('input[name="password"]', 'test');
      await page.click('button[type="submit"]');
      await page.waitForSelector('button[type="submit"]');
      await page.click('button[type="submit"]');
      await page.waitForSelector('section[data-upstream="demo"][data-state="connected"]');
      assert.equal(await page.textContent('.notice'), 'Connected to demo.');
    } finally {
      await context.close();
    }
    assert.equal((await demoConnection())?.state, 'connected');
    const reconnected = events.messages.filter((m) => m.event === 'connected');
    assert.equal(reconnected.length, 2, 'a second connected event, for the sign-in on the page');
    assert.equal(
      textOf(await hosts[0]!.callTool({ name: 'whoami' })),
      AS_USER,
      'the same host, no new handshake',
    );
    assert.equal(textOf(await (await host()).callTool({ name: 'whoami' })), AS_USER, 'and a new host');
    assert.ok(!events.raw.includes('access_token'), 'no token crossed the event stream');
  });
});
