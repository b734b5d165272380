import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { afterEach, describe, it } from 'node:test';

import type { CredentialKey } from '../../src/credential/key.js';
import { isLatchkeyError } from '../../src/errors.js';
import { DEFAULT_BACKOFF } from '../../src/lifecycle/backoff.js';
import { type EngineContext, emptyStats } from '../../src/lifecycle/context.js';
import { newLeaseHolder } from '../../src/lifecycle/lease.js';
import { LogoutError, logout } from '../../src/lifecycle/logout.js';
import { silentLogger } from '../../src/log.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { obtainTokens } from '../harness/index.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';
import { refreshAccepted } from '../support/refresh-probe.js';
import { saveTokens } from '../support/seed-credential.js';

/** The engine a manager would hand logout(), as its own process (own lease holder). */
function engine(store: CredentialStore, extra: Partial<EngineContext> = {}): EngineContext {
  return {
    store,
    holder: newLeaseHolder(),
    skewMs: 60_000,
    requestTimeoutMs: 10_000,
    leaseTtlMs: 10_000,
    waitTimeoutMs: 15_000,
    pollMs: 25,
    backoff: DEFAULT_BACKOFF,
    fetch: undefined,
    logger: silentLogger,
    stats: emptyStats(),
    sendResource: true,
    login: { supersedeAfterMs: 1_000, maxLoginsPerMinute: 3 },
    warn: () => undefined,
    ...extra,
  };
}

async function onlyKey(store: CredentialStore, server: string): Promise<CredentialKey> {
  const list = await store.listCredentials({ server });
  assert.equal(list.length, 1);
  return (list[0] as NonNullable<(typeof list)[0]>).key;
}

/** Whether the AS still accepts this refresh token (as the public test client). */
async function refreshable(env: LifecycleEnv, refreshToken: string | undefined): Promise<boolean> {
  assert.ok(refreshToken);
  return refreshAccepted(env.as.issuer, env.as.clientId, refreshToken, env.server);
}

describe('logout', () => {
  let env: LifecycleEnv | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  it('revokes refresh then access token at the AS, deletes locally, appends a revoked event', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    await env.login(store);
    const key = await onlyKey(store, env.server);
    const cred = await store.getCredential(key);
    env.as.counters.reset();

    const report = await logout(engine(store), key);

    assert.equal(report.found, true);
    assert.equal(report.owned, true);
    assert.equal(report.deleted, true);
    assert.deepEqual(report.revocation?.refreshToken, { status: 'revoked' });
    assert.deepEqual(report.revocation?.accessToken, { status: 'revoked' });
    assert.deepEqual(report.notes, []);
    assert.equal(env.as.counters.count('revocation', 'ok'), 2);
    assert.equal(await store.getCredential(key), undefined);
    assert.equal(await store.getLease(key), undefined);
    assert.equal((await env.as.introspect(cred?.secrets.accessToken ?? '')).active, false);
    assert.equal(await refreshable(env, cred?.secrets.refreshToken), false);
    const events = await store.readEvents({ server: env.server });
    const last = events.at(-1);
    assert.equal(last?.type, 'revoked');
    assert.deepEqual(last?.detail, { owned: true, refreshToken: 'revoked', accessToken: 'revoked' });
    assert.ok(!JSON.stringify(events).includes(cred?.secrets.accessToken ?? '\u0000'));
  });

  it('tokens not obtained by latchkey are only forgotten locally, and the report says so', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    const tokens = await obtainTokens(env.as, { resource: env.server, subject: 'local' });
    await saveTokens(store, env.server, {
      issuer: tokens.issuer,
      clientId: tokens.clientId,
      requestedAt: tokens.requestedAt,
      response: tokens.response,
      owned: false,
    });
    const key = await onlyKey(store, env.server);
    env.as.counters.reset();

    const report = await logout(engine(store), key);

    assert.equal(report.owned, false);
    assert.equal(report.deleted, true);
    assert.equal(report.revocation, undefined);
    assert.match(report.notes.join(' '), /not revoked/);
    assert.ok(
      report.notes.every((n) => n.startsWith(env?.server ?? '')),
      'notes name the server',
    );
    assert.equal(env.as.counters.count('revocation'), 0);
    assert.equal(await store.getCredential(key), undefined);
    assert.equal((await store.readEvents({ server: env.server })).at(-1)?.type, 'deleted');
    assert.equal((await env.as.introspect(tokens.response.access_token)).active, true);
  });

  it('best effort: a 503 at the revocation endpoint still deletes locally and reports the failure', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    await env.login(store);
    const key = await onlyKey(store, env.server);
    const cred = await store.getCredential(key);
    const fault = env.proxy.inject({ path: '/token/revocation', action: { type: 'status', status: 503 } });

    const report = await logout(engine(store), key);

    assert.equal(fault.hits, 2);
    assert.equal(report.deleted, true);
    for (const outcome of [report.revocation?.refreshToken, report.revocation?.accessToken]) {
      assert.equal(outcome?.status, 'failed');
      assert.ok(outcome?.status === 'failed' && outcome.retryable && outcome.httpStatus === 503);
    }
    assert.equal(report.notes.length, 2);
    assert.match(
      report.notes[0] ?? '',
      /revoking the refresh token at .* failed \(HTTP 503\); revocation is pending: later latchkey runs retry it/,
    );
    // Issue 13: what failed transiently is queued for later runs, not forgotten.
    assert.deepEqual(report.pendingRevocation, ['refresh_token', 'access_token']);
    assert.equal((await store.listPendingRevocations({ server: env.server })).length, 2);
    assert.ok(report.notes[0]?.startsWith(env.server));
    assert.equal(await store.getCredential(key), undefined);
    const last = (await store.readEvents({ server: env.server })).at(-1);
    assert.equal(last?.type, 'deleted');
    assert.deepEqual(last?.detail, { owned: true, refreshToken: 'failed', accessToken: 'failed' });
    assert.ok(!JSON.stringify(report).includes(cred?.secrets.accessToken ?? '\u0000'));
    assert.ok(!JSON.stringify(report).includes(cred?.secrets.refreshToken ?? '\u0000'));
  });

  it('strict: a 503 keeps the credential and throws a retryable error naming the server', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    await env.login(store);
    const key = await onlyKey(store, env.server);
    const before = await store.getCredential(key);
    const fault = env.proxy.inject({ path: '/token/revocation', action: { type: 'status', status: 503 } });

    await assert.rejects(logout(engine(store), key, { strict: true }), (error: unknown) => {
      assert.ok(isLatchkeyError(error));
      assert.ok(error instanceof LogoutError);
      assert.equal(error.code, 'LOGOUT_INCOMPLETE');
      assert.equal(error.retryable, true);
      assert.equal(error.server, env?.server);
      assert.match(error.message, /kept the stored credential/);
      assert.match(error.message, /503/);
      assert.equal(error.report.deleted, false);
      assert.equal(error.report.revocation?.refreshToken?.status, 'failed');
      return true;
    });
    const kept = await store.getCredential(key);
    assert.equal(kept?.generation, before?.generation, 'untouched');
    assert.equal(kept?.secrets.accessToken, before?.secrets.accessToken);
    assert.equal(await store.getLease(key), undefined, 'lease released');
    assert.ok(
      !(await store.readEvents({ server: env.server })).some(
        (e) => e.type === 'revoked' || e.type === 'deleted',
      ),
    );

    env.proxy.clear(fault);
    const report = await logout(engine(store), key, { strict: true });
    assert.equal(report.deleted, true);
    assert.equal(report.revocation?.refreshToken?.status, 'revoked');
  });

  it('cancelled mid-revocation: CANCELLED, and the credential is kept', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    await env.login(store);
    const key = await onlyKey(store, env.server);
    const held = env.proxy.inject({ path: '/token/revocation', action: { type: 'hold' } });
    const controller = new AbortController();
    const pending = logout(engine(store), key, { signal: controller.signal });
    await held.arrived;
    controller.abort();
    await assert.rejects(pending, (error: unknown) => isLatchkeyError(error) && error.code === 'CANCELLED');
    env.proxy.clear(held);
    assert.ok(await store.getCredential(key), 'kept');
    assert.equal(await store.getLease(key), undefined, 'lease released');
  });

  it('an AS without revocation: reported as unsupported, deleted locally even when strict', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300, revocation: false });
    const store = await env.openStore();
    await env.login(store);
    const key = await onlyKey(store, env.server);

    const report = await logout(engine(store), key, { strict: true });

    assert.equal(report.deleted, true);
    assert.equal(report.revocation?.endpoint, undefined);
    assert.equal(report.revocation?.refreshToken?.status, 'unsupported');
    assert.equal(report.revocation?.accessToken?.status, 'unsupported');
    assert.match(report.notes.join(' '), /no revocation endpoint; it stays valid until it expires/);
    assert.equal((await store.readEvents({ server: env.server })).at(-1)?.type, 'deleted');
  });

  it('nothing stored: found false, nothing sent', async () => {
    env = await lifecycleEnv();
    const store = await env.openStore();
    const report = await logout(engine(store), {
      server: env.server,
      issuer: env.as.issuer,
      subject: 'local',
    });
    assert.deepEqual(report, {
      key: { server: env.server, issuer: env.as.issuer, subject: 'local' },
      found: false,
      owned: false,
      deleted: false,
      notes: [],
    });
    assert.equal(env.as.counters.count('revocation'), 0);
  });

  it('waits for a live lease holder; breaks the lease of a dead one at once', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    const store = await env.openStore();
    await env.login(store);
    const key = await onlyKey(store, env.server);

    // A live holder (this process, another owner) with a short lease: logout waits it out.
    const other = newLeaseHolder();
    await store.acquireLease(key, other, 400);
    const started = Date.now();
    const pending = logout(engine(store), key);
    await sleep(150);
    assert.ok(await store.getCredential(key), 'still there while the other holder has the lease');
    const report = await pending;
    assert.equal(report.deleted, true);
    assert.ok(Date.now() - started >= 350, 'waited for the lease to lapse');

    // A holder whose process is gone: its 60 s lease is broken straight away.
    await env.login(store);
    const again = await onlyKey(store, env.server);
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    await store.acquireLease(
      again,
      { owner: `${hostname()}:${dead}:gone`, pid: dead, host: hostname() },
      60_000,
    );
    const t0 = Date.now();
    const second = await logout(engine(store), again);
    assert.equal(second.deleted, true);
    assert.ok(Date.now() - t0 < 5_000, 'did not wait for the dead holder');
  });

  it('a refresh in flight cannot write back after logout (the AS accepted it, the store refuses it)', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 1 });
    const storeA = await env.openStore();
    const storeB = await env.openStore();
    await env.login(storeA);
    const key = await onlyKey(storeA, env.server);
    const manager = env.manager(storeA, { leaseTtlMs: 300, watch: false, proactiveRefresh: false });
    await sleep(1100); // the access token expired: the next getToken refreshes

    const held = env.proxy.inject({ method: 'POST', path: '/token', exact: true, action: { type: 'hold' } });
    const refreshing = manager.getToken(env.server).then(
      () => assert.fail('the refresh must not produce a token after logout'),
      (error: unknown) => error,
    );
    await held.arrived;
    // Revocation fails, so the refresh token stays good at the AS and the held refresh will
    // succeed there: only the store's generation and lease checks stand in its way.
    const revocationDown = env.proxy.inject({
      path: '/token/revocation',
      action: { type: 'status', status: 503 },
    });

    const report = await logout(engine(storeB, { leaseTtlMs: 5_000 }), key);
    assert.equal(report.deleted, true, 'logout took the lapsed lease and deleted');
    env.proxy.clear(revocationDown);

    held.release();
    const error = await refreshing;
    assert.ok(isLatchkeyError(error), String(error));
    assert.equal(error.code, 'LOGIN_REQUIRED');
    assert.equal(env.as.counters.count('refresh_token', 'ok'), 1, 'the AS did rotate the tokens');
    assert.equal(await storeA.getCredential(key), undefined, 'still deleted');
    assert.equal(await storeB.getCredential(key), undefined);
    const events = await storeB.readEvents({ server: env.server });
    const deletedAt = events.findIndex((e) => e.type === 'deleted');
    assert.ok(deletedAt >= 0);
    assert.ok(!events.slice(deletedAt).some((e) => e.type === 'refreshed'), 'no write after logout');
  });

  it('a refresh held during a successful logout meets a revoked grant and stays logged out', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 1 });
    const storeA = await env.openStore();
    const storeB = await env.openStore();
    await env.login(storeA);
    const key = await onlyKey(storeA, env.server);
    const manager = env.manager(storeA, { leaseTtlMs: 300, watch: false, proactiveRefresh: false });
    await sleep(1100);

    const held = env.proxy.inject({ method: 'POST', path: '/token', exact: true, action: { type: 'hold' } });
    const refreshing = manager.getToken(env.server).then(
      () => assert.fail('no token after logout'),
      (error: unknown) => error,
    );
    await held.arrived;
    const report = await logout(engine(storeB), key);
    assert.equal(report.revocation?.refreshToken?.status, 'revoked');
    held.release();
    const error = await refreshing;
    assert.ok(isLatchkeyError(error) && error.code === 'LOGIN_REQUIRED', String(error));
    assert.equal(env.as.counters.count('refresh_token', 'invalid_grant'), 1);
    assert.equal(await storeA.getCredential(key), undefined);
    assert.equal((await storeA.listCredentials({ server: env.server })).length, 0);
  });
});
