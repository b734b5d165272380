// latchkey serve's HTTP API over real HTTP, on the real oidc-provider AS, the real MCP server
// and a real SQLite store (PostgreSQL with LATCHKEY_TEST_STORE=postgres). The connect flow is
// completed by the harness's browser stand-in (it signs in at the AS's login and consent
// pages), and the callback is delivered to the service as a browser follows the AS's redirect.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { createAppKey } from '../../src/serve/app-keys.js';
import type { RunningServe } from '../../src/serve/server.js';
import type { ServeStore } from '../../src/store/serve-contract.js';
import { completeAuthorization, type TestAuthorizationServer, type TestMcpServer } from '../harness/index.js';
import { initializeWithBearer } from '../support/mcp-initialize.js';
import { type ServeEnv, startServeEnv } from './serve-env.js';

const RETURN_TO = 'https://app.example.com/settings/connections?tab=mcp';

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

describe('latchkey serve: the HTTP API', () => {
  let env: ServeEnv;
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  let store: ServeStore;
  let serve: RunningServe;
  let key: string;
  let otherKey: string;
  const secretsSeen: string[] = [];

  before(async () => {
    env = await startServeEnv({ accessTokenTtl: 300 });
    ({ as, mcp, store, serve, key } = env);
    otherKey = (await createAppKey(store, 'other app')).key;
    secretsSeen.push(key, otherKey);
  });

  after(async () => {
    await env.close();
  });

  async function api(
    method: string,
    path: string,
    options: { key?: string | null; body?: unknown; base?: string } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = {};
    const bearer = options.key === undefined ? key : options.key;
    if (bearer !== null) headers['authorization'] = `Bearer ${bearer}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${options.base ?? serve.url}${path}`, {
      method,
      headers,
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? {} : JSON.parse(text), headers: response.headers };
  }

  /** Start a connection and sign in at the AS as `asUser`; returns the callback URL the AS redirected to. */
  async function signIn(subject: string, asUser: string): Promise<URL> {
    const started = await api('POST', `/v1/subjects/${subject}/connections/demo`, {
      body: { return_to: RETURN_TO },
    });
    assert.equal(started.status, 201, JSON.stringify(started.body));
    const authorizationUrl = String(started.body['authorization_url']);
    const expiresAt = Date.parse(String(started.body['expires_at']));
    assert.ok(Math.abs(expiresAt - (Date.now() + 600_000)) < 30_000, 'the link lives 10 minutes');
    const callback = await completeAuthorization(authorizationUrl, { subject: asUser });
    assert.equal(`${callback.origin}${callback.pathname}`, `${serve.url}/oauth/callback`);
    secretsSeen.push(callback.searchParams.get('code') ?? '', callback.searchParams.get('state') ?? '');
    return callback;
  }

  /** Deliver the callback as the browser would (to `base`, another instance, when given). */
  async function deliver(callback: URL, base?: string): Promise<Response> {
    const target = base === undefined ? callback : new URL(`${callback.pathname}${callback.search}`, base);
    return fetch(target, { redirect: 'manual' });
  }

  async function token(subject: string): Promise<Answer> {
    return api('GET', `/v1/subjects/${subject}/connections/demo/token`);
  }

  it('health, readiness and the OpenAPI document need no key', async () => {
    assert.deepEqual((await api('GET', '/healthz', { key: null })).body, { status: 'ok' });
    assert.equal((await api('GET', '/readyz', { key: null })).status, 200);
    const spec = await api('GET', '/openapi.json', { key: null });
    assert.equal(spec.status, 200);
    assert.equal(spec.body['openapi'], '3.1.0');
    assert.deepEqual(spec.body['servers'], [{ url: serve.publicUrl }]);
  });

  it('GET /v1/upstreams lists the configuration, and needs a valid app key', async () => {
    const listed = await api('GET', '/v1/upstreams');
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body, {
      upstreams: [{ id: 'demo', url: mcp.url, scopes: null, client: 'dynamic' }],
    });
    const none = await api('GET', '/v1/upstreams', { key: null });
    assert.equal(none.status, 401);
    assert.equal(none.body['error'], 'unauthorized');
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
  });

  it('connect: the link signs the user in at the AS, the callback saves the credential and returns to the app', async () => {
    const callback = await signIn('alice', 'alice-at-as');
    const landed = await deliver(callback);
    assert.equal(landed.status, 303);
    const location = new URL(landed.headers.get('location') ?? '');
    assert.equal(`${location.origin}${location.pathname}`, 'https://app.example.com/settings/connections');
    assert.equal(location.searchParams.get('tab'), 'mcp', 'return_to kept as given');
    assert.equal(location.searchParams.get('latchkey_status'), 'connected');
    assert.equal(location.searchParams.get('latchkey_upstream'), 'demo');

    const listed = await api('GET', '/v1/subjects/alice/connections');
    assert.equal(listed.status, 200);
    const [connection] = listed.body['connections'] as Record<string, unknown>[];
    assert.equal(connection?.['upstream'], 'demo');
    assert.equal(connection?.['state'], 'connected');
    assert.ok(Date.parse(String(connection?.['expires_at'])) > Date.now());
    assert.equal(connection?.['last_error'], null);

    const got = await token('alice');
    assert.equal(got.status, 200);
    assert.equal(got.body['token_type'], 'Bearer');
    assert.equal(got.headers.get('cache-control'), 'no-store');
    const accessToken = String(got.body['access_token']);
    secretsSeen.push(accessToken);
    const introspected = await as.introspect(accessToken);
    assert.equal(introspected.active, true);
    assert.equal(introspected.sub, 'alice-at-as', 'the token is the one alice signed in for');
    const atMcp = await initializeWithBearer(mcp.url, accessToken);
    assert.equal(atMcp.status, 200, 'the MCP server accepts it');

    const replay = await deliver(callback);
    assert.equal(replay.status, 400, 'a callback is single use');
    assert.equal(replay.headers.get('location'), null);
  });

  it('the callback completes on another instance sharing the store', async () => {
    // Behind one load balancer, every instance has the same public URL.
    const second = await env.instance({ publicUrl: serve.publicUrl });
    try {
      const callback = await signIn('dora', 'dora-at-as');
      const landed = await deliver(callback, second.url);
      assert.equal(landed.status, 303);
      assert.equal(
        new URL(landed.headers.get('location') ?? '').searchParams.get('latchkey_status'),
        'connected',
      );
      const got = await token('dora');
      assert.equal(got.status, 200, 'the first instance serves what the second saved');
      assert.equal((await as.introspect(String(got.body['access_token']))).sub, 'dora-at-as');
    } finally {
      await second.close();
    }
  });

  it("a link started for one subject saves under that subject only: it cannot attach an account to another's", async () => {
    const before = await token('alice');
    const callback = await signIn('bob', 'mallory-at-as');
    assert.equal((await deliver(callback)).status, 303);
    const bob = await token('bob');
    assert.equal((await as.introspect(String(bob.body['access_token']))).sub, 'mallory-at-as');
    const after = await token('alice');
    assert.equal(after.body['access_token'], before.body['access_token'], "alice's connection is untouched");
  });

  it('a denied consent returns to the app with the error, and saves nothing', async () => {
    const started = await api('POST', '/v1/subjects/erin/connections/demo', {
      body: { return_to: RETURN_TO },
    });
    const callback = await completeAuthorization(String(started.body['authorization_url']), {
      subject: 'erin-at-as',
      consent: false,
    });
    const landed = await deliver(callback);
    assert.equal(landed.status, 303);
    const location = new URL(landed.headers.get('location') ?? '');
    assert.equal(location.searchParams.get('latchkey_status'), 'error');
    assert.equal(location.searchParams.get('latchkey_error'), 'access_denied');
    assert.deepEqual((await api('GET', '/v1/subjects/erin/connections')).body, { connections: [] });
  });

  it('a forged or unknown state is refused with a page, not a redirect', async () => {
    const forged = await fetch(
      `${serve.url}/oauth/callback?code=x&state=${randomBytes(16).toString('hex')}`,
      {
        redirect: 'manual',
      },
    );
    assert.equal(forged.status, 400);
    assert.match(forged.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await forged.text(), /expired or was already used/);
  });

  it('an expired connect link cannot be completed', async () => {
    const short = await env.instance({ publicUrl: serve.publicUrl, connectTtlMs: 1 });
    try {
      const started = await api('POST', '/v1/subjects/frank/connections/demo', {
        base: short.url,
        body: { return_to: RETURN_TO },
      });
      assert.equal(started.status, 201);
      const callback = await completeAuthorization(String(started.body['authorization_url']), {
        subject: 'frank',
      });
      const landed = await deliver(callback);
      assert.equal(landed.status, 400);
      assert.equal((await token('frank')).status, 409);
    } finally {
      await short.close();
    }
  });

  it('with --allow-return-to, return_to must be on an allowed origin', async () => {
    const strict = await env.instance({ returnToOrigins: ['https://app.example.com'] });
    try {
      const path = '/v1/subjects/alice/connections/demo';
      const elsewhere = await api('POST', path, {
        base: strict.url,
        body: { return_to: 'https://app.example.com.evil.test/settings' },
      });
      assert.equal(elsewhere.status, 400);
      assert.match(String(elsewhere.body['message']), /allowed origin \(https:\/\/app\.example\.com\)/);
      const otherPort = await api('POST', path, {
        base: strict.url,
        body: { return_to: 'https://app.example.com:8443/' },
      });
      assert.equal(otherPort.status, 400, 'an origin includes its port');
      const allowed = await api('POST', path, { base: strict.url, body: { return_to: RETURN_TO } });
      assert.equal(allowed.status, 201);
    } finally {
      await strict.close();
    }
  });

  it('token without a connection: 409 login_required with the connect link', async () => {
    const missing = await token('nobody');
    assert.equal(missing.status, 409);
    assert.equal(missing.body['error'], 'login_required');
    assert.equal(missing.body['upstream'], 'demo');
    assert.equal(missing.body['connect_url'], `${serve.publicUrl}/v1/subjects/nobody/connections/demo`);
  });

  it('bad input: unknown upstream, invalid subject, missing or bad return_to, oversized body', async () => {
    const unknown = await api('POST', '/v1/subjects/alice/connections/nope', {
      body: { return_to: RETURN_TO },
    });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body['error'], 'unknown_upstream');
    assert.equal((await api('GET', '/v1/subjects/al%20ice/connections')).status, 400);
    assert.equal((await api('POST', '/v1/subjects/alice/connections/demo', { body: {} })).status, 400);
    const js = await api('POST', '/v1/subjects/alice/connections/demo', {
      body: { return_to: 'javascript:alert(1)' },
    });
    assert.equal(js.status, 400);
    const big = await api('POST', '/v1/subjects/alice/connections/demo', {
      body: { return_to: RETURN_TO, pad: 'x'.repeat(20_000) },
    });
    assert.equal(big.status, 413);
    assert.equal((await api('PUT', '/v1/upstreams')).status, 405);
    assert.equal((await api('GET', '/v2/nothing')).status, 404);
  });

  it('isolation: every endpoint refuses no key and a wrong key, and another subject sees nothing of alice', async () => {
    const [id] = /^lk_([0-9a-f]{12})_/.exec(key)?.slice(1) ?? [];
    const wrongSecret = `lk_${id}_${randomBytes(32).toString('base64url')}`;
    const endpoints: [string, string, unknown?][] = [
      ['GET', '/v1/upstreams'],
      ['GET', '/v1/subjects/alice/connections'],
      ['POST', '/v1/subjects/alice/connections/demo', { return_to: RETURN_TO }],
      ['GET', '/v1/subjects/alice/connections/demo/token'],
      ['DELETE', '/v1/subjects/alice/connections/demo'],
    ];
    for (const [method, path, body] of endpoints) {
      for (const bad of [null, wrongSecret, 'lk_nonsense', `${key}x`]) {
        const answer = await api(method, path, { key: bad, body });
        assert.equal(answer.status, 401, `${method} ${path} with key ${bad === null ? 'none' : 'wrong'}`);
        assert.equal(answer.body['error'], 'unauthorized');
      }
    }
    // Another subject: nothing of alice's is visible, usable or revocable through it.
    assert.deepEqual((await api('GET', '/v1/subjects/carol/connections')).body, { connections: [] });
    assert.equal((await token('carol')).status, 409);
    assert.equal((await api('DELETE', '/v1/subjects/carol/connections/demo')).status, 404);
    const started = await api('POST', '/v1/subjects/carol/connections/demo', {
      body: { return_to: RETURN_TO },
    });
    assert.equal(started.status, 201, 'carol can start her own connection');
    const alice = await token('alice');
    assert.equal(alice.status, 200, 'alice is still connected after all of it');
    assert.equal((await as.introspect(String(alice.body['access_token']))).active, true);
    // A second app key works alike (both keys act for the same application users).
    assert.equal((await api('GET', '/v1/subjects/alice/connections', { key: otherKey })).status, 200);
  });

  it('disconnect revokes both tokens at the AS and deletes the connection', async () => {
    const held = (await store.listCredentials({ subject: 'alice' }))[0];
    assert.ok(held !== undefined);
    const revocationsBefore = as.counters.count('revocation', 'ok');
    const gone = await api('DELETE', '/v1/subjects/alice/connections/demo');
    assert.equal(gone.status, 200, JSON.stringify(gone.body));
    assert.deepEqual(gone.body, {
      upstream: 'demo',
      revoked: ['refresh_token', 'access_token'],
      pending_revocation: [],
    });
    assert.equal(as.counters.count('revocation', 'ok') - revocationsBefore, 2);
    assert.equal((await as.introspect(held.secrets.accessToken)).active, false);
    assert.equal((await as.introspect(held.secrets.refreshToken ?? '')).active, false);
    assert.deepEqual((await api('GET', '/v1/subjects/alice/connections')).body, { connections: [] });
    assert.equal((await token('alice')).status, 409);
    assert.equal((await api('DELETE', '/v1/subjects/alice/connections/demo')).status, 404);
    assert.equal((await token('bob')).status, 200, "bob's connection is not affected");
  });

  it('the log has a line per request, and no key, token, code or state', () => {
    const requests = env.logLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['msg'] === 'request');
    assert.ok(requests.length > 20);
    assert.ok(requests.every((l) => typeof l['requestId'] === 'string' && typeof l['status'] === 'number'));
    const all = env.logLines.join('\n');
    for (const secret of secretsSeen.filter((s) => s.length > 8)) {
      assert.ok(!all.includes(secret), `a secret leaked into the log: ${secret.slice(0, 6)}…`);
    }
    assert.ok(!all.includes('code='), 'no callback query logged');
  });
});
