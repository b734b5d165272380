// Connection states and disconnect failures through the serve API, on the real AS behind a
// fault proxy (test/support/lifecycle-env.ts). Runs on SQLite, or on PostgreSQL with
// LATCHKEY_TEST_STORE=postgres. Credentials are put in place by a real login at the AS.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { createLogger } from '../../src/log.js';
import { createAppKey } from '../../src/serve/app-keys.js';
import { startServe, type RunningServe } from '../../src/serve/server.js';
import { hasServeTables, type ServeStore } from '../../src/store/serve-contract.js';
import { obtainTokens } from '../harness/index.js';
import { lifecycleEnv, type LifecycleEnv, sleep } from '../support/lifecycle-env.js';

interface Setup {
  env: LifecycleEnv;
  store: ServeStore;
  serve: RunningServe;
  key: string;
}

let current: Setup | undefined;
afterEach(async () => {
  await current?.serve.close();
  await current?.env.close();
  current = undefined;
});

async function setup(accessTokenTtl: number): Promise<Setup> {
  const env = await lifecycleEnv({ accessTokenTtl });
  const store = await env.openStore();
  assert.ok(hasServeTables(store), `the ${store.kind} store has the serve tables`);
  const serve = await startServe({
    store,
    upstreams: [{ id: 'demo', url: env.server }],
    listen: { host: '127.0.0.1', port: 0 },
    refresher: false,
    logger: createLogger({ level: 'silent' }),
  });
  current = { env, store, serve, key: (await createAppKey(store, 'states')).key };
  return current;
}

/** A real login at the AS as `subject`, saved for that subject through the service's manager. */
async function connect({ env, serve }: Setup, subject: string): Promise<void> {
  const tokens = await obtainTokens(env.as, { resource: env.server, subject });
  await serve.manager.saveAcquired(env.server, {
    issuer: tokens.issuer,
    clientId: tokens.clientId,
    subject,
    requestedAt: tokens.requestedAt,
    response: tokens.response,
  });
}

async function api(s: Setup, method: string, path: string) {
  const response = await fetch(`${s.serve.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${s.key}` },
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

async function stateOf(s: Setup, subject: string): Promise<Record<string, unknown> | undefined> {
  const listed = await api(s, 'GET', `/v1/subjects/${subject}/connections`);
  return (listed.body['connections'] as Record<string, unknown>[])[0];
}

describe('serve: connection states and disconnect failures', () => {
  it('a grant revoked at the AS shows as needs-login with its error, and the token call asks to reconnect', async () => {
    const s = await setup(2);
    await connect(s, 'ann');
    assert.equal((await stateOf(s, 'ann'))?.['state'], 'connected');
    await s.env.as.revokeGrants('ann');
    await sleep(2_100); // the 2-s access token is now unusable: the next call must refresh
    const got = await api(s, 'GET', '/v1/subjects/ann/connections/demo/token');
    assert.equal(got.status, 409);
    assert.equal(got.body['error'], 'login_required');
    assert.equal(got.body['upstream'], 'demo');
    assert.match(String(got.body['connect_url']), /\/v1\/subjects\/ann\/connections\/demo$/);
    const state = await stateOf(s, 'ann');
    assert.equal(state?.['state'], 'needs-login');
    assert.equal((state?.['last_error'] as Record<string, unknown> | null)?.['code'], 'LOGIN_REQUIRED');
  });

  it('an AS outage at refresh time: 503 with Retry-After, the state is retrying, nothing is deleted', async () => {
    const s = await setup(2);
    await connect(s, 'ben');
    // From now until the token is unusable, and then some: background refreshes fail too.
    const outage = s.env.proxy.inject({
      path: '/token',
      exact: true,
      action: { type: 'status', status: 503 },
    });
    await sleep(2_100);
    const got = await api(s, 'GET', '/v1/subjects/ben/connections/demo/token');
    assert.equal(got.status, 503);
    assert.equal(got.body['error'], 'temporarily_unavailable');
    assert.equal(got.body['upstream'], 'demo');
    assert.ok(Number(got.headers.get('retry-after')) >= 1);
    assert.ok(outage.hits >= 1, 'a refresh was tried');
    assert.equal((await stateOf(s, 'ben'))?.['state'], 'retrying');
    s.env.proxy.clear(outage);
    await sleep(1_100); // a blocked caller may trigger one attempt per second
    const recovered = await api(s, 'GET', '/v1/subjects/ben/connections/demo/token');
    assert.equal(recovered.status, 200, 'the same connection recovers once the AS is back');
    assert.equal((await stateOf(s, 'ben'))?.['state'], 'connected');
  });

  it('disconnect while revocation fails: the connection is deleted and both tokens are queued for retry', async () => {
    const s = await setup(300);
    await connect(s, 'cat');
    const fault = s.env.proxy.inject({ path: '/token/revocation', action: { type: 'status', status: 503 } });
    const gone = await api(s, 'DELETE', '/v1/subjects/cat/connections/demo');
    assert.equal(gone.status, 200);
    assert.deepEqual(gone.body, {
      upstream: 'demo',
      revoked: [],
      pending_revocation: ['refresh_token', 'access_token'],
    });
    assert.equal(fault.hits, 2);
    const pending = await s.store.listPendingRevocations({ server: s.env.server });
    assert.deepEqual(pending.map((p) => `${p.key.subject} ${p.tokenType}`).sort(), [
      'cat access_token',
      'cat refresh_token',
    ]);
    assert.equal(await stateOf(s, 'cat'), undefined);
  });
});
