import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { isLatchkeyError } from '../../src/errors.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';

describe('authorization server outage', () => {
  let env: LifecycleEnv;
  before(async () => {
    env = await lifecycleEnv({ accessTokenTtl: 6, rotateRefreshToken: true });
  });
  after(() => env.close());

  it('503 for 20 s: nothing deleted, old token served until expiry, then transient errors, recovery within 2 s', async () => {
    const store = await env.openStore();
    await env.login(store);
    const manager = env.manager(store);
    const original = await manager.getToken(env.server);
    assert.ok(original.expiresAt !== undefined);

    const outageStart = Date.now();
    const outage = env.proxy.inject({
      method: 'POST',
      path: '/token',
      action: { type: 'status', status: 503 },
    });
    const servedOld: number[] = [];
    const transient: number[] = [];
    const other: unknown[] = [];
    while (Date.now() - outageStart < 20_000) {
      try {
        const token = await manager.getToken(env.server);
        assert.equal(token.token, original.token, 'during the outage only the old token can be served');
        assert.ok(Date.now() < original.expiresAt, 'and only while it is valid');
        servedOld.push(Date.now());
      } catch (error) {
        if (isLatchkeyError(error) && error.code === 'REFRESH_TRANSIENT') {
          assert.equal(error.retryable, true);
          assert.equal(error.server, env.server);
          transient.push(Date.now());
        } else other.push(error);
      }
      await sleep(100);
    }
    assert.ok(outage.hits >= 1, 'the token endpoint answered 503');
    assert.deepEqual(other, [], 'only transient errors during the outage');
    assert.ok(servedOld.length > 0 && transient.length > 0);
    assert.ok(
      Math.max(...servedOld) < Math.min(...transient),
      'old token first, errors only after it expired',
    );
    assert.ok(
      env.as.counters.count('refresh_token') === 0,
      'the AS itself saw nothing: the proxy answered 503',
    );

    const stored = await store.listCredentials({ server: env.server });
    assert.equal(stored.length, 1, 'the credential was not deleted');
    assert.equal(stored[0]?.status.state, 'retrying');
    assert.ok((stored[0]?.status.failures ?? 0) >= 1);

    env.proxy.clear(outage);
    const backAt = Date.now();
    let recoveredAt: number | undefined;
    while (recoveredAt === undefined && Date.now() - backAt < 10_000) {
      try {
        const token = await manager.getToken(env.server);
        assert.notEqual(token.token, original.token);
        recoveredAt = Date.now();
      } catch (error) {
        assert.ok(isLatchkeyError(error) && error.code === 'REFRESH_TRANSIENT', String(error));
        await sleep(100);
      }
    }
    assert.ok(recoveredAt !== undefined, 'recovered');
    const recoveryMs = recoveredAt - backAt;
    console.log(`# recovery after the AS came back: ${recoveryMs} ms`);
    assert.ok(recoveryMs <= 2000, `recovered in ${recoveryMs} ms`);
    assert.equal((await store.listCredentials({ server: env.server }))[0]?.status.state, 'valid');
  });
});
