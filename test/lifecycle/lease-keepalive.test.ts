import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';

/**
 * Two managers (two processes' worth: own store connections, own lease holders) with a lease
 * shorter than a token request, against a real AS that rotates refresh tokens and revokes the
 * grant when a used one comes back. `keepLeaseAlive` is what `latchkey serve --lease-ttl`
 * turns on.
 */
describe('a short refresh lease', () => {
  let env: LifecycleEnv | undefined;
  afterEach(() => env?.close());

  async function race(keepLeaseAlive: boolean): Promise<{ a: string; b: string }> {
    // Tokens outlive the slowed request, so the token A gets is still good when B adopts it.
    env = await lifecycleEnv({ accessTokenTtl: 6, rotateRefreshToken: true });
    const storeA = await env.openStore();
    const storeB = await env.openStore();
    await env.login(storeA);
    const options = { leaseTtlMs: 600, keepLeaseAlive, watch: false, proactiveRefresh: false };
    const a = env.manager(storeA, options);
    const b = env.manager(storeB, options);
    await sleep(6100); // expired: the next getToken refreshes
    // Every token request waits 2 s at the AS's front door: three lease lifetimes.
    env.proxy.inject({ method: 'POST', path: '/token', exact: true, action: { type: 'delay', ms: 2000 } });
    const first = a.getToken(env.server);
    await sleep(100);
    const second = b.getToken(env.server);
    const [ta, tb] = await Promise.allSettled([first, second]);
    return {
      a: ta.status === 'fulfilled' ? ta.value.token : String(ta.reason),
      b: tb.status === 'fulfilled' ? tb.value.token : String(tb.reason),
    };
  }

  it('kept alive while its refresh runs: the other manager waits and adopts, one refresh at the AS', async () => {
    const { a, b } = await race(true);
    assert.equal(env?.as.counters.count('refresh_token', 'invalid_grant'), 0, 'no refresh token sent twice');
    assert.equal(env?.as.counters.count('refresh_token', 'ok'), 1, 'one refresh reached the AS');
    assert.equal(a, b, 'both callers got the one new token');
    assert.ok((await env!.as.introspect(a)).active, 'and it is live');
  });

  it('left to lapse (the default for a manager, whose default lease outlasts a request): the second manager resends the refresh token', async () => {
    // The contrast that shows the keeper is what holds the line above.
    await race(false);
    assert.ok(
      (env?.as.counters.count('refresh_token', 'invalid_grant') ?? 0) >= 1,
      'the lapsed lease let a used refresh token reach the AS again',
    );
  });
});
