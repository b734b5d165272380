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
