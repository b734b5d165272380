import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';

import type { StoredCredential } from '../../src/credential/model.js';
import type { CredentialManager } from '../../src/lifecycle/manager.js';
import {
  DEFAULT_REVOCATION_RETRY,
  type RevocationRetryPolicy,
  retryDelayMs,
} from '../../src/lifecycle/pending-revocations.js';
import { retryPendingRevocations } from '../../src/lifecycle/revocation-retrier.js';
import { silentLogger } from '../../src/log.js';
import type { CredentialStore, LifecycleEvent } from '../../src/store/contract.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';
import { refreshAccepted } from '../support/refresh-probe.js';

/** Short delays so that a retry falls due within the test; the logic is the default's. */
const FAST: Partial<RevocationRetryPolicy> = { initialMs: 300, maxMs: 5_000, passBudgetMs: 8_000 };

async function eventually(condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

function deps(store: CredentialStore, owner: string, policy: Partial<RevocationRetryPolicy> = FAST) {
  return {
    store,
    owner,
    fetch: undefined,
    logger: silentLogger,
    requestTimeoutMs: 5_000,
    policy: { ...DEFAULT_REVOCATION_RETRY, ...policy },
  };
}

function noSecrets(text: string, cred: StoredCredential): void {
  assert.ok(!text.includes(cred.secrets.accessToken), 'no access token');
  assert.ok(!text.includes(cred.secrets.refreshToken ?? '\u0000'), 'no refresh token');
}

describe('pending revocations (logout while the AS is down)', () => {
  let env: LifecycleEnv | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  /** Log in, then log out with the revocation endpoint answering 503. */
  async function logoutWhileDown(
    store: CredentialStore,
    extra: { action?: 'status' | 'drop' } = {},
  ): Promise<{ cred: StoredCredential; manager: CredentialManager }> {
    assert.ok(env);
    await env.login(store);
    const [cred] = await store.listCredentials({ server: env.server });
    assert.ok(cred);
    const fault = env.proxy.inject({
      path: '/token/revocation',
      action: extra.action === 'drop' ? { type: 'drop' } : { type: 'status', status: 503 },
    });
    const manager = env.manager(store, {
      watch: false,
      proactiveRefresh: false,
      retryRevocations: false,
      revocationRetry: FAST,
    });
    const [report] = await manager.logout(env.server);
    assert.ok(fault.hits >= 2, 'both revocations were attempted');
    assert.equal(report?.deleted, true);
    assert.deepEqual(report?.pendingRevocation, ['refresh_token', 'access_token']);
    assert.match(report?.notes.join('\n') ?? '', /revocation is pending: later latchkey runs retry it/);
    return { cred, manager };
  }

  it('logout queues both tokens sealed; a later manager revokes them once the AS is back', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    const { cred } = await logoutWhileDown(store);

    assert.equal(await store.getCredential(cred.key), undefined, 'deleted locally');
    const queued = await store.listPendingRevocations();
    assert.deepEqual(
      queued
        .map((r) => [r.tokenType, r.attempts, r.clientId, r.key.server])
        .sort()
        .reverse(),
      [
        ['refresh_token', 0, cred.clientId, env.server],
        ['access_token', 0, cred.clientId, env.server],
      ],
    );
    const access = queued.find((r) => r.tokenType === 'access_token');
    assert.equal(access?.expiresAt, cred.expiresAt, 'the access token is kept until it expires');
    const refresh = queued.find((r) => r.tokenType === 'refresh_token');
    assert.ok(
      refresh !== undefined && refresh.expiresAt > Date.now() + 29 * 86_400_000,
      'a refresh token without a known expiry is kept for the 30-day cap',
    );
    // The very problem: the tokens still work at the AS.
    assert.equal((await env.as.introspect(cred.secrets.accessToken)).active, true);

    env.proxy.clear();
    env.as.counters.reset();
    // A later run: another connection to the store, as another process would have.
    const later = await env.openStore();
    env.manager(later, { watch: false, proactiveRefresh: false, revocationRetry: FAST });
    assert.ok(
      await eventually(async () => (await later.listPendingRevocations()).length === 0, 15_000),
      'the queue drains',
    );

    assert.equal(env.as.counters.count('revocation', 'ok'), 2);
    assert.equal((await env.as.introspect(cred.secrets.accessToken)).active, false);
    assert.equal(
      await refreshAccepted(env.as.issuer, env.as.clientId, cred.secrets.refreshToken ?? '', env.server),
      false,
    );
    const events = await later.readEvents({ server: env.server });
    const retried = events.filter((e) => e.type === 'revocation-retried');
    assert.deepEqual(
      retried.map((e) => [e.detail?.['token'], e.detail?.['outcome'], e.detail?.['attempts']]).sort(),
      [
        ['access_token', 'revoked', 1],
        ['refresh_token', 'revoked', 1],
      ],
    );
    assert.equal(events.filter((e) => e.type === 'revocation-pending').length, 1);
    assert.ok(!events.some((e) => e.type === 'revoked'), 'a retry is not a new logout event');
    noSecrets(JSON.stringify(events), cred);
  });

  it('a retry that fails again is rescheduled with backoff and a short error, never dropped', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    const { cred } = await logoutWhileDown(store);
    await sleep(FAST.initialMs! * 1.3);

    const before = Date.now();
    const first = await retryPendingRevocations(deps(store, 'run-1'));
    assert.deepEqual(first, { revoked: 0, dropped: 0, rescheduled: 2 });
    let rows = await store.listPendingRevocations();
    assert.equal(rows.length, 2);
    for (const row of rows) {
      assert.equal(row.attempts, 1);
      assert.equal(row.lastError, 'HTTP 503');
      // Second retry: initial * factor, within the jitter.
      assert.ok(row.nextAttemptAt >= before + 600 * 0.8, `backoff grows (${row.nextAttemptAt - before} ms)`);
    }
    assert.deepEqual(
      await retryPendingRevocations(deps(store, 'run-2')),
      { revoked: 0, dropped: 0, rescheduled: 0 },
      'nothing is due before its time',
    );

    env.proxy.clear();
    env.proxy.inject({ path: '/token/revocation', action: { type: 'drop' } });
    await sleep(Math.max(0, Math.max(...rows.map((r) => r.nextAttemptAt)) - Date.now()) + 20);
    assert.equal((await retryPendingRevocations(deps(store, 'run-3'))).rescheduled, 2);
    rows = await store.listPendingRevocations();
    assert.deepEqual(
      rows.map((r) => [r.attempts, r.lastError]),
      [
        [2, 'network error'],
        [2, 'network error'],
      ],
    );
    noSecrets(JSON.stringify(rows), cred);
    assert.equal((await env.as.introspect(cred.secrets.accessToken)).active, true, 'still valid: kept');
  });

  it('a Retry-After from the AS postpones the next try beyond the backoff', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    await logoutWhileDown(store);
    env.proxy.clear();
    env.proxy.inject({ path: '/token/revocation', action: { type: 'rate-limit', retryAfter: 120 } });
    await sleep(FAST.initialMs! * 1.3);

    const before = Date.now();
    // Retry-After is honoured up to the backoff cap (maxMs); raise the cap above it.
    const policy = { ...FAST, maxMs: 300_000 };
    assert.equal((await retryPendingRevocations(deps(store, 'run', policy))).rescheduled, 2);
    for (const row of await store.listPendingRevocations()) {
      assert.equal(row.lastError, 'HTTP 429');
      assert.ok(
        row.nextAttemptAt >= before + 119_000 || row.nextAttemptAt === row.expiresAt,
        `waits out Retry-After (${row.nextAttemptAt - before} ms)`,
      );
    }
  });

  it('a token that expired unrevoked is dropped with an event, and nothing is sent', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    const now = Date.now();
    await store.addPendingRevocations(
      [
        {
          key: { server: env.server, issuer: env.as.issuer, subject: 'local' },
          tokenType: 'access_token',
          clientId: env.as.clientId,
          tokenEndpointAuthMethod: 'none',
          createdAt: now,
          expiresAt: now + 100,
          nextAttemptAt: now + 100,
          secrets: { token: randomBytes(24).toString('base64url') },
        },
      ],
      { type: 'revocation-pending', server: env.server, issuer: env.as.issuer, subject: 'local' },
    );
    await sleep(200);
    env.as.counters.reset();

    assert.deepEqual(await retryPendingRevocations(deps(store, 'run')), {
      revoked: 0,
      dropped: 1,
      rescheduled: 0,
    });
    assert.equal(env.as.counters.count('revocation'), 0);
    assert.deepEqual(await store.listPendingRevocations(), []);
    const last = (await store.readEvents()).at(-1);
    assert.equal(last?.type, 'revocation-expired');
    assert.deepEqual(last?.detail, { token: 'access_token', attempts: 0 });
  });

  it('a final answer from the AS (invalid_client) drops the row as refused', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    const now = Date.now();
    await store.addPendingRevocations(
      [
        {
          key: { server: env.server, issuer: env.as.issuer, subject: 'local' },
          tokenType: 'refresh_token',
          clientId: 'a-client-the-as-does-not-know',
          tokenEndpointAuthMethod: 'none',
          createdAt: now,
          expiresAt: now + 60_000,
          nextAttemptAt: now,
          secrets: { token: randomBytes(24).toString('base64url') },
        },
      ],
      { type: 'revocation-pending', server: env.server, issuer: env.as.issuer, subject: 'local' },
    );

    assert.deepEqual(await retryPendingRevocations(deps(store, 'run')), {
      revoked: 0,
      dropped: 1,
      rescheduled: 0,
    });
    assert.deepEqual(await store.listPendingRevocations(), []);
    const last = (await store.readEvents()).at(-1);
    assert.equal(last?.type, 'revocation-retried');
    assert.equal(last?.detail?.['outcome'], 'refused');
    assert.match(String(last?.detail?.['error']), /^invalid_client/);
  });

  it('two processes retrying at once send each revocation exactly once', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    const { cred } = await logoutWhileDown(store);
    env.proxy.clear();
    // Slow answers keep both passes in flight together.
    env.proxy.inject({ path: '/token/revocation', action: { type: 'delay', ms: 300 } });
    await sleep(FAST.initialMs! * 1.3);
    env.as.counters.reset();
    const [a, b] = [await env.openStore(), await env.openStore()];

    const results = await Promise.all([
      retryPendingRevocations(deps(a, 'process-a')),
      retryPendingRevocations(deps(b, 'process-b')),
    ]);

    assert.equal(results[0].revoked + results[1].revoked, 2);
    assert.equal(env.as.counters.count('revocation'), 2, 'two requests in all, one per token');
    assert.equal((await env.as.introspect(cred.secrets.accessToken)).active, false);
  });

  it('a long-running manager (a proxy) retries on its own, without any new command', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const running = await env.openStore();
    const watcher = env.manager(running, {
      watch: true,
      watchPollMs: 50,
      proactiveRefresh: false,
      revocationRetry: FAST,
    });
    const retried: LifecycleEvent[] = [];
    watcher.on('event', (e) => {
      if (e.type === 'revocation-retried') retried.push(e);
    });
    const other = await env.openStore();
    const { cred } = await logoutWhileDown(other);
    env.proxy.clear();

    assert.ok(
      await eventually(async () => retried.length === 2, 15_000),
      'the running manager revoked both tokens',
    );
    assert.deepEqual(await running.listPendingRevocations(), []);
    assert.equal((await env.as.introspect(cred.secrets.accessToken)).active, false);
    assert.equal(
      await refreshAccepted(env.as.issuer, env.as.clientId, cred.secrets.refreshToken ?? '', env.server),
      false,
    );
  });

  it('retryRevocations: false leaves the queue to other runs', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    await logoutWhileDown(store);
    env.proxy.clear();
    const quiet = env.manager(store, { watch: false, retryRevocations: false, revocationRetry: FAST });
    await sleep(FAST.initialMs! * 1.3 + 1_200);
    await quiet.settle();
    assert.equal((await store.listPendingRevocations()).length, 2);
    assert.equal(env.as.counters.count('revocation', 'ok'), 0);
  });

  it('backoff: delays grow by the factor up to the cap, with bounded jitter', () => {
    const policy = DEFAULT_REVOCATION_RETRY;
    assert.equal(
      retryDelayMs(1, policy, () => 0.5),
      5_000,
    );
    assert.equal(
      retryDelayMs(3, policy, () => 0.5),
      20_000,
    );
    assert.equal(
      retryDelayMs(40, policy, () => 0.5),
      3_600_000,
    );
    assert.equal(
      retryDelayMs(1, policy, () => 0),
      4_000,
    );
    assert.equal(
      retryDelayMs(1, policy, () => 1),
      6_000,
    );
  });
});
