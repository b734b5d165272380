import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';

describe('proactive refresh in a long-running process', () => {
  let env: LifecycleEnv;
  before(async () => {
    env = await lifecycleEnv({ accessTokenTtl: 3, rotateRefreshToken: true });
  });
  after(() => env.close());

  it('3-s tokens, a caller every 100 ms for 30 s: no caller ever waits on a refresh, no errors', async () => {
    const store = await env.openStore();
    await env.login(store);
    const manager = env.manager(store);
    const errors: unknown[] = [];
    const seen = new Map<string, number>(); // token -> expiresAt
    let expiredHandedOut = 0;
    const calls = 300;
    for (let i = 0; i < calls; i++) {
      const at = Date.now();
      try {
        const token = await manager.getToken(env.server);
        seen.set(token.token, token.expiresAt ?? Infinity);
        if ((token.expiresAt ?? Infinity) <= at) expiredHandedOut++;
      } catch (error) {
        errors.push(error);
      }
      await sleep(100);
    }
    const stats = manager.stats;
    assert.deepEqual(errors, []);
    assert.equal(expiredHandedOut, 0, 'no expired token was handed out');
    assert.equal(stats.callersWaitedOnRefresh, 0, 'no caller waited on a refresh');
    // ~30 s of 3-s tokens refreshed at ~2.25 s: about 13 refreshes, all done in the background.
    assert.ok(stats.refreshRequests >= 9, `refreshed ${stats.refreshRequests} times`);
    assert.ok(seen.size >= 10, `callers saw ${seen.size} distinct tokens`);
    assert.equal(env.as.counters.count('refresh_token', 'invalid_grant'), 0);
    assert.equal(env.as.counters.count('refresh_token', 'ok'), stats.refreshRequests);
    // The token handed out last is live at the AS.
    const last = [...seen.keys()].at(-1);
    assert.ok(last !== undefined && (await env.as.introspect(last)).active);
  });
});

describe("proactiveRefresh 'refresher': a fleet refresher keeps the store fresh", () => {
  let env: LifecycleEnv;
  before(async () => {
    env = await lifecycleEnv({ accessTokenTtl: 3, rotateRefreshToken: true });
  });
  after(() => env.close());

  it("proactiveRefresh 'refresher': calls past the refresh-ahead point do not refresh; a caller refreshes only an unusable token", async () => {
    const store = await env.openStore();
    await env.login(store);
    env.as.counters.reset();
    const manager = env.manager(store, { proactiveRefresh: 'refresher' });
    const first = await manager.getToken(env.server);
    const mandatory = (first.expiresAt ?? 0) - 1000; // 3-s tokens: the skew is clamped to 1 s
    // Past ~3/4 of the lifetime and up to the mandatory point: the cached token, no refresh.
    while (Date.now() < mandatory - 150) {
      assert.equal((await manager.getToken(env.server)).token, first.token);
      await sleep(50);
    }
    await sleep(300);
    assert.equal(env.as.counters.count('refresh_token'), 0, 'nothing refreshed ahead of need');
    // Past the mandatory point with no refresher around: the caller refreshes, once.
    const next = await manager.getToken(env.server);
    assert.notEqual(next.token, first.token);
    assert.equal(env.as.counters.count('refresh_token', 'ok'), 1);
    assert.equal(manager.stats.callersWaitedOnRefresh, 1);
  });
});
