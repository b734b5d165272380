import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { keyId } from '../../src/credential/key.js';
import { type LifecycleEnv, lifecycleEnv } from '../support/lifecycle-env.js';
import {
  generations,
  loginSubjects,
  type RunningRefresher,
  runRefresher,
  until,
} from '../support/refresher-env.js';

/**
 * A claimed credential is refreshed under the claim's own lease, without taking it again
 * (refresher.ts, refresh.ts `refreshClaimedCredential`). A claim that waits in its issuer's
 * queue past its lease must still not be refreshed once another instance has taken it over
 * and refreshed it: with rotation, that would present a consumed refresh token. Real
 * oidc-provider AS with rotation, real SQLite store, two refresher instances.
 */
describe('fleet refresher, a claim that outlived its lease in the queue', () => {
  const envs: LifecycleEnv[] = [];
  const running: RunningRefresher[] = [];
  afterEach(async () => {
    for (const r of running.splice(0)) await r.close();
    for (const e of envs.splice(0)) await e.close();
  });

  it('is checked before its refresh: the other instance refreshed it, so nothing is sent twice', async () => {
    const e = await lifecycleEnv({ accessTokenTtl: 4, rotateRefreshToken: true });
    envs.push(e);
    const store = await e.openStore();
    await loginSubjects(e, store, 4);
    await until('all four due', async () => (await store.countDue()) >= 4, 10_000);
    e.as.counters.reset();
    // A claims all four but may start one every 2 s; its 600 ms leases lapse in the queue.
    const slow = runRefresher(store, {
      leaseTtlMs: 600,
      requestTimeoutMs: 2000,
      perIssuerRatePerSecond: 0.5,
      perIssuerBurst: 1,
      perIssuerConcurrency: 4,
    });
    running.push(slow);
    await until('A claimed all four', () => Promise.resolve(slow.refresher.stats().claimed >= 4), 5000);
    await new Promise((resolve) => setTimeout(resolve, 700));
    const quick = runRefresher(store, { leaseTtlMs: 3000, requestTimeoutMs: 2000 });
    running.push(quick);
    await until(
      'every credential refreshed once',
      async () => [...(await generations(store)).values()].every((g) => g >= 2),
      10_000,
    );
    // Long enough for A to come to each of its queued claims (one start every 2 s).
    await new Promise((resolve) => setTimeout(resolve, 6500));
    // Stop both first: with 4-s tokens refreshes go on, and one answered by the AS but not
    // yet stored would be counted at the AS and not among the events.
    for (const r of running.splice(0)) await r.close();
    const problems = [...slow.events, ...quick.events].filter(
      (ev) => ev.type === 'needs-login' || ev.type === 'retrying',
    );
    assert.deepEqual(problems, [], 'no refresh was refused');
    assert.equal(
      e.as.counters.count('refresh_token', 'invalid_grant'),
      0,
      'no consumed refresh token was sent',
    );
    const refreshed = [...slow.events, ...quick.events].filter((ev) => ev.type === 'refreshed');
    const byGeneration = new Set(refreshed.map((ev) => `${keyId(ev)}#${ev.generation}`));
    assert.equal(byGeneration.size, refreshed.length, 'each generation was produced once');
    assert.equal(e.as.counters.count('refresh_token', 'ok'), refreshed.length, 'one request per refresh');
    assert.ok(
      quick.events.some((ev) => ev.type === 'refreshed'),
      'the second instance took over lapsed claims',
    );
  });
});
