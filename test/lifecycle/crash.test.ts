import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { renderNextStep } from '../../src/cli/next-step.js';
import type { NextAction } from '../../src/next-action.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';
import { startWorker, type Worker } from '../support/worker.js';

const WORKER = fileURLToPath(new URL('../fixtures/manager-worker.ts', import.meta.url));

interface Result {
  tokens: string[];
  errors: { code?: string; server?: string; message: string; next?: NextAction }[];
}

/**
 * A process holding the refresh lease is killed with SIGKILL mid-refresh. Two moments
 * matter, and the test makes each happen on purpose rather than by chance:
 *   A. before the AS processed the refresh (the request is parked at the fault proxy and
 *      never delivered): nothing is lost, and another process must finish the job;
 *   B. after the AS rotated the refresh token but before the answer reached the store (a
 *      lost response): the only copy of the new refresh token died with the process. No
 *      client can recover this without AS help (a reuse grace period); latchkey must say
 *      "log in again" for that server, not loop or fail silently.
 */
describe('crash mid-refresh', () => {
  let env: LifecycleEnv;
  let store: CredentialStore;
  const workers: Worker[] = [];
  const spawn = (extra: Record<string, string> = {}): Worker => {
    const worker = startWorker(WORKER, { ...env.env, ...extra });
    workers.push(worker);
    return worker;
  };

  before(async () => {
    env = await lifecycleEnv({ accessTokenTtl: 1, rotateRefreshToken: true });
    store = await env.openStore();
  });
  afterEach(() => {
    env.proxy.clear();
    for (const w of workers.splice(0)) w.kill('SIGKILL');
  });
  after(() => env.close());

  async function expiredLogin(): Promise<void> {
    await env.login(store);
    await sleep(1100);
    env.as.counters.reset();
  }

  it('A: killed before the AS saw the refresh; another process refreshes without a login', async () => {
    await expiredLogin();
    const [before] = await store.listCredentials({ server: env.server });
    assert.ok(before !== undefined);
    const held = env.proxy.inject({ method: 'POST', path: '/token', exact: true, action: { type: 'hold' } });

    const doomed = spawn();
    await doomed.next((m) => m.type === 'ready');
    doomed.send({ cmd: 'get', callers: 3 });
    await held.arrived;
    const lease = await store.getLease(before.key);
    assert.ok(lease !== undefined && lease.pid !== process.pid, 'the doomed process holds the refresh lease');
    doomed.kill('SIGKILL');
    await doomed.exited;
    env.proxy.clear(held); // the parked request's client is gone: it never reaches the AS
    assert.equal(env.as.counters.count('refresh_token'), 0, 'case A: the AS never processed the refresh');

    const survivor = spawn();
    await survivor.next((m) => m.type === 'ready');
    const startedAt = Date.now();
    survivor.send({ cmd: 'get', callers: 3 });
    const result = await survivor.next<Result>((m) => m.type === 'result');
    console.log(`# crash A: survivor had a token ${Date.now() - startedAt} ms after asking`);
    assert.deepEqual(result.errors, []);
    assert.equal(new Set(result.tokens).size, 1);
    assert.equal(env.as.counters.count('refresh_token', 'ok'), 1);
    assert.equal(env.as.counters.count('authorization_code'), 0, 'no interactive login');
    const [now] = await store.listCredentials({ server: env.server });
    assert.equal(now?.generation, before.generation + 1);
    assert.equal(now.status.state, 'valid');
  });

  it('A: a lease left by a holder on another host is honoured until it expires, then taken over', async () => {
    await expiredLogin();
    const [cred] = await store.listCredentials({ server: env.server });
    assert.ok(cred !== undefined);
    // A crashed holder whose pid cannot be checked from here (e.g. another machine on a
    // shared store): only expiry frees its lease.
    const ttlMs = 1500;
    const taken = await store.acquireLease(
      cred.key,
      { owner: 'elsewhere:1:x', pid: 1, host: 'elsewhere' },
      ttlMs,
    );
    assert.ok(taken !== undefined);

    const survivor = spawn();
    await survivor.next((m) => m.type === 'ready');
    const startedAt = Date.now();
    survivor.send({ cmd: 'get', callers: 2 });
    const result = await survivor.next<Result>((m) => m.type === 'result');
    const waited = Date.now() - startedAt;
    console.log(`# crash A (foreign lease): survivor waited ${waited} ms for a ${ttlMs} ms lease`);
    assert.deepEqual(result.errors, []);
    assert.ok(Date.now() >= taken.expiresAt, 'it did not refresh under a live lease');
    assert.equal(env.as.counters.count('refresh_token', 'ok'), 1);
    assert.equal((await store.listCredentials({ server: env.server }))[0]?.generation, cred.generation + 1);
  });

  it('B: killed after the AS rotated but before persistence is reported as needs-login, not hidden', async () => {
    await expiredLogin();
    const [before] = await store.listCredentials({ server: env.server });
    assert.ok(before !== undefined);
    const lost = env.proxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      times: 1,
      action: { type: 'lost-response' },
    });

    const doomed = spawn();
    await doomed.next((m) => m.type === 'ready');
    doomed.send({ cmd: 'get', callers: 1 });
    await lost.processed;
    doomed.kill('SIGKILL');
    await doomed.exited;

    // This is how the test tells case B from case A: the AS rotated, the store did not move.
    assert.equal(env.as.counters.count('refresh_token', 'ok'), 1, 'case B: the AS rotated the refresh token');
    const [stale] = await store.listCredentials({ server: env.server });
    assert.equal(stale?.generation, before.generation, 'case B: the rotation never reached the store');
    console.log('# crash B: unavoidable loss detected: AS rotated, process killed before persisting');

    const survivor = spawn();
    await survivor.next((m) => m.type === 'ready');
    // The killed process may have lived long enough to record its lost response as a
    // transient failure; callers within the next second are told that (REFRESH_TRANSIENT,
    // retryable) instead of trying again at once. Asking again a second later is what a
    // caller does; the verdict must then be the permanent one.
    let result: Result | undefined;
    for (let round = 0; round < 3; round++) {
      survivor.send({ cmd: 'get', callers: 2 });
      result = await survivor.next<Result>((m) => m.type === 'result');
      if (!result.errors.every((e) => e.code === 'REFRESH_TRANSIENT')) break;
      await new Promise((r) => setTimeout(r, 1_100));
    }
    assert.ok(result !== undefined);
    assert.equal(result.tokens.length, 0);
    assert.equal(result.errors.length, 2);
    for (const error of result.errors) {
      assert.equal(error.code, 'LOGIN_REQUIRED');
      assert.equal(error.server, env.server);
      // The next action is data; the CLI words it as the command to run.
      assert.equal(error.next?.kind, 'login');
      assert.match(
        renderNextStep(error.next ?? { kind: 'retry' }),
        new RegExp(`latchkey login ${env.server.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`),
      );
    }
    assert.equal(
      env.as.counters.count('refresh_token', 'invalid_grant'),
      1,
      'one attempt with the old token',
    );
    const [after] = await store.listCredentials({ server: env.server });
    assert.equal(after?.status.state, 'needs-login', 'the credential is kept, marked needs-login');
  });

  it("B: the process that breaks the dead holder's lease says whose refresh was lost", async () => {
    await expiredLogin();
    const [before] = await store.listCredentials({ server: env.server });
    assert.ok(before !== undefined);
    // Unlike a lost response, a swallowed one leaves the doomed process waiting: it is
    // killed still holding the lease, with nothing recorded, every time.
    const swallowed = env.proxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      times: 1,
      action: { type: 'swallow-response' },
    });
    const doomed = spawn();
    await doomed.next((m) => m.type === 'ready');
    doomed.send({ cmd: 'get', callers: 1 });
    await swallowed.processed;
    const lease = await store.getLease(before.key);
    assert.ok(lease !== undefined && lease.pid !== process.pid, 'the doomed process holds the refresh lease');
    doomed.kill('SIGKILL');
    await doomed.exited;
    env.proxy.clear(swallowed);
    assert.equal(env.as.counters.count('refresh_token', 'ok'), 1, 'the AS rotated the refresh token');
    const eventsBefore = await store.lastEventId();

    const survivor = spawn();
    await survivor.next((m) => m.type === 'ready');
    survivor.send({ cmd: 'get', callers: 1 });
    const result = await survivor.next<Result>((m) => m.type === 'result');
    assert.equal(result.errors[0]?.code, 'LOGIN_REQUIRED');
    const [after] = await store.listCredentials({ server: env.server });
    assert.equal(after?.status.state, 'needs-login');
    assert.ok(after.status.lastError?.message.includes(`taken over from ${lease.owner}`));
    const notices = (await store.readEvents({ afterId: eventsBefore })).filter(
      (e) => e.type === 'needs-login',
    );
    assert.equal(notices.length, 1);
    assert.equal(notices[0]?.detail?.['takenOverFrom'], lease.owner, 'the store event names the dead holder');
  });

  it('settle(): a process about to exit waits for its refresh to be stored, so nothing is spent', async () => {
    await expiredLogin();
    const [before] = await store.listCredentials({ server: env.server });
    assert.ok(before !== undefined);
    const slow = env.proxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      action: { type: 'delay', ms: 400 },
      times: 1,
    });
    const manager = env.manager(store, { watch: false, proactiveRefresh: false });
    // Something the command no longer waits for (an SDK transport's GET stream) refreshes.
    void manager.getAccessToken(env.server).catch(() => undefined);
    await slow.arrived;
    await manager.settle();
    const [after] = await store.listCredentials({ server: env.server });
    assert.ok(after !== undefined);
    assert.ok(
      after.generation > before.generation,
      'the refreshed credential was stored before settle() returned',
    );
    assert.notEqual(
      after.secrets.refreshToken,
      before.secrets.refreshToken,
      'the rotated refresh token is kept',
    );
    assert.equal(env.as.counters.count('refresh_token', 'ok'), 1);
  });
});
