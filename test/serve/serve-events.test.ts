// GET /v1/events and /metrics over real HTTP, with credentials from real logins at the real
// oidc-provider AS. The cross-instance case runs two services on one real PostgreSQL: the
// refresher of instance A meets invalid_grant, and the needs-login event reaches an SSE
// client of instance B. The others run on SQLite (or PostgreSQL with LATCHKEY_TEST_STORE).
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { createLogger } from '../../src/log.js';
import { createAppKey } from '../../src/serve/app-keys.js';
import { startServe, type RunningServe, type ServeOptions } from '../../src/serve/server.js';
import { hasServeTables, type ServeStore } from '../../src/store/serve-contract.js';
import { obtainTokens } from '../harness/index.js';
import { lifecycleEnv, type LifecycleEnv } from '../support/lifecycle-env.js';
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
});
