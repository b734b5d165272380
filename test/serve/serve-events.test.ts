// GET /v1/events and /metrics over real HTTP, with credentials from real logins at the real
// oidc-provider AS. The cross-instance case runs two services on one real PostgreSQL: the
// refresher of instance A meets invalid_grant, and the needs-login event reaches an SSE
// client of instance B. The others run on SQLite (or PostgreSQL with LATCHKEY_TEST_STORE).
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { afterEach, describe, it } from 'node:test';

import { createLogger } from '../../src/log.js';
import { createAppKey } from '../../src/serve/app-keys.js';
import { startServe, type RunningServe, type ServeOptions } from '../../src/serve/server.js';
import { hasServeTables, type ServeStore } from '../../src/store/serve-contract.js';
import { obtainTokens } from '../harness/index.js';
import { lifecycleEnv, type LifecycleEnv, sleep } from '../support/lifecycle-env.js';
import type { TestStoreKind } from '../support/postgres.js';
import { SseReader } from './sse-reader.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups.length = 0;
});

async function environment(accessTokenTtl: number, store?: TestStoreKind): Promise<LifecycleEnv> {
  const env = await lifecycleEnv({ accessTokenTtl, ...(store === undefined ? {} : { store }) });
  cleanups.push(() => env.close());
  return env;
}

async function instance(
  env: LifecycleEnv,
  options: Partial<ServeOptions> = {},
): Promise<{ serve: RunningServe; store: ServeStore }> {
  const store = await env.openStore();
  assert.ok(hasServeTables(store));
  const serve = await startServe({
    store,
    upstreams: [{ id: 'demo', url: env.server }],
    listen: { host: '127.0.0.1', port: 0 },
    refresher: false,
    logger: createLogger({ level: 'silent' }),
    ...options,
  });
  cleanups.push(() => serve.close());
  return { serve, store };
}

/** A real login at the AS as `subject`; returns the tokens and a function that saves them. */
async function login(env: LifecycleEnv, subject: string) {
  const tokens = await obtainTokens(env.as, { resource: env.server, subject });
  const secrets = [tokens.response.access_token, String(tokens.response.refresh_token ?? '')];
  return {
    secrets,
    save: (serve: RunningServe) =>
      serve.manager.saveAcquired(env.server, {
        issuer: tokens.issuer,
        clientId: tokens.clientId,
        subject,
        requestedAt: tokens.requestedAt,
        response: tokens.response,
      }),
  };
}

async function events(serve: RunningServe, key: string, query = '', headers: Record<string, string> = {}) {
  const reader = await SseReader.open(`${serve.url}/v1/events${query}`, {
    authorization: `Bearer ${key}`,
    ...headers,
  });
  cleanups.push(() => reader.close());
  return reader;
}

describe('serve: GET /v1/events', () => {
  it('an invalid_grant met by instance A reaches an SSE client of instance B (two instances, one PostgreSQL)', async () => {
    // 4-s access tokens: A's refresher finds the credential due within seconds.
    const env = await environment(4, 'postgres');
    const a = await instance(env, { refresher: true, publicUrl: 'https://a.example.com' });
    const b = await instance(env, { publicUrl: 'https://gw.example.com' });
    const key = (await createAppKey(a.store, 'portal')).key;
    const stream = await events(b.serve, key);
    assert.equal(stream.status, 200);
    const ann = await login(env, 'ann');
    // The grant dies at the AS before anyone refreshes. A's refresher is the only refresher
    // (B runs none, and nobody asks B for a token), so B learns of it only through the store.
    await env.as.revokeGrants('ann');
    await ann.save(a.serve);
    const connected = await stream.waitFor((m) => m.event === 'connected');
    assert.deepEqual(
      { ...connected.data, at: undefined },
      { id: Number(connected.id), type: 'connected', subject: 'ann', upstream: 'demo', at: undefined },
    );
    const needsLogin = await stream.waitFor((m) => m.event === 'needs-login', 20_000);
    assert.equal(needsLogin.data['subject'], 'ann');
    assert.equal(needsLogin.data['upstream'], 'demo');
    assert.equal(needsLogin.data['error'], 'invalid_grant');
    assert.equal(needsLogin.data['connect_url'], 'https://gw.example.com/v1/subjects/ann/connections/demo');
    assert.ok(Number(needsLogin.id) > Number(connected.id));
    for (const secret of ann.secrets) assert.ok(!stream.raw.includes(secret), 'no token crosses the stream');
  });

  it('filters by subject, resumes after Last-Event-ID from the log, sends heartbeats, and ends streams at shutdown', async () => {
    const env = await environment(300);
    const { serve, store } = await instance(env, { events: { heartbeatMs: 100 } });
    const key = (await createAppKey(store, 'portal')).key;
    const bobOnly = await events(serve, key, '?subject=bob');
    const everyone = await events(serve, key);
    const bob = await login(env, 'bob');
    const cat = await login(env, 'cat');
    await bob.save(serve);
    await cat.save(serve);
    const catConnected = await everyone.waitFor(
      (m) => m.event === 'connected' && m.data['subject'] === 'cat',
    );
    const bobConnected = await bobOnly.waitFor((m) => m.event === 'connected');
    assert.equal(bobConnected.data['subject'], 'bob');
    assert.ok(
      bobOnly.messages.every((m) => m.data['subject'] === 'bob'),
      'a subject filter sends that subject only',
    );
    await bobOnly.close();
    // While bob's client is away, his connection is removed; cat's too, for the filter.
    for (const subject of ['bob', 'cat']) {
      const gone = await fetch(`${serve.url}/v1/subjects/${subject}/connections/demo`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${key}` },
      });
      assert.equal(gone.status, 200);
    }
    await everyone.waitFor((m) => m.event === 'disconnected' && m.data['subject'] === 'cat');
    // The client comes back with the last id it saw: it gets what it missed, from the log.
    const resumed = await events(serve, key, '?subject=bob', { 'last-event-id': String(bobConnected.id) });
    const missed = await resumed.waitFor((m) => m.event === 'disconnected');
    assert.equal(missed.data['subject'], 'bob');
    assert.ok(Number(missed.id) > Number(bobConnected.id));
    assert.ok(!resumed.messages.some((m) => m.event === 'connected'), 'nothing at or before the resume id');
    assert.ok(Number(catConnected.id) < Number(missed.id));
    for (let i = 0; i < 50 && !everyone.comments.includes('keepalive'); i++) await sleep(20);
    assert.ok(everyone.comments.includes('keepalive'), 'heartbeat comments keep an idle stream open');
    for (const secret of [...bob.secrets, ...cat.secrets]) assert.ok(!everyone.raw.includes(secret));
    // An id the log never reached (another store's, or made up) does not hold events back.
    const future = await events(serve, key, '', { 'last-event-id': '999999999' });
    const dee = await login(env, 'dee');
    await dee.save(serve);
    await future.waitFor((m) => m.event === 'connected' && m.data['subject'] === 'dee');
    // Shutdown ends open streams instead of waiting on them.
    await serve.close();
    await everyone.finished();
    await resumed.finished();
    await future.finished();
    assert.ok(everyone.ended && resumed.ended && future.ended);
  });

  it('needs an app key, and refuses an invalid subject filter', async () => {
    const env = await environment(300);
    const { serve, store } = await instance(env);
    const key = (await createAppKey(store, 'portal')).key;
    const none = await fetch(`${serve.url}/v1/events`);
    assert.equal(none.status, 401);
    const wrong = await fetch(`${serve.url}/v1/events`, {
      headers: { authorization: 'Bearer lk_nope_nope' },
    });
    assert.equal(wrong.status, 401);
    const bad = await fetch(`${serve.url}/v1/events?subject=${encodeURIComponent('a b/c')}`, {
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as Record<string, unknown>)['error'], 'invalid_subject');
  });

  it('a client that stops reading is cut off past its buffer bound; the others keep their stream', async () => {
    // SQLite in both passes: the bound is the service's, and thousands of appends are cheap here.
    const env = await environment(300, 'sqlite');
    const { serve, store } = await instance(env, { events: { maxBufferedBytes: 1024 } });
    const key = (await createAppKey(store, 'portal')).key;
    const reader = await events(serve, key);
    const url = new URL(serve.url);
    const stalled = connect(Number(url.port), url.hostname);
    cleanups.push(async () => {
      stalled.destroy();
    });
    stalled.write(`GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n\r\n`);
    stalled.pause(); // and never read again
    const streams = async () => {
      const text = await (await fetch(`${serve.url}/metrics`)).text();
      return Number(/^latchkey_sse_streams (\d+)$/m.exec(text)?.[1]);
    };
    for (let i = 0; i < 100 && (await streams()) < 2; i++) await sleep(20);
    assert.equal(await streams(), 2);
    // Real store events, as a busy gateway appends them, until the stalled client's kernel
    // buffers are full and the service's own buffer passes the bound.
    let appended = 0;
    while ((await streams()) === 2 && appended < 40_000) {
      for (let i = 0; i < 500; i++, appended++) {
        await store.appendEvent({
          type: 'refreshed',
          server: env.server,
          issuer: 'https://as.example.com',
          subject: `user-${appended}`,
        });
      }
      await sleep(50);
    }
    assert.equal(
      await streams(),
      1,
      `the stalled stream was closed after ${appended} events; reader ended ${reader.ended}, got ${reader.messages.length}`,
    );
    await reader.waitFor((m) => m.data['subject'] === `user-${appended - 1}`);
    assert.ok(!reader.ended, 'the reading client keeps its stream');
  });
});
