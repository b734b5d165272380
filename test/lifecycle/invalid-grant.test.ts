import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { cliMessage } from '../../src/cli/next-step.js';
import { isLatchkeyError } from '../../src/errors.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';

describe('invalid_grant', () => {
  let env: LifecycleEnv | undefined;
  afterEach(() => env?.close());

  it('from a stale refresh token another writer already rotated: adopted, not reported', async () => {
    // An AS that rejects a consumed refresh token without revoking the grant (as Entra or an
    // AS inside its grace window would), so the race itself is what is under test.
    // 5-s tokens: the one A adopts must still be live when it is introspected at the end, also
    // on a loaded machine (with 1-s tokens it sometimes was not).
    env = await lifecycleEnv({ accessTokenTtl: 5, rotateRefreshToken: true, revokeGrantOnReuse: false });
    const storeA = await env.openStore();
    const storeB = await env.openStore();
    await env.login(storeA);
    const slowLease = { leaseTtlMs: 300, watch: false, proactiveRefresh: false };
    const a = env.manager(storeA, slowLease);
    const b = env.manager(storeB, slowLease);
    await sleep(5100);

    // A's refresh is held at the proxy, so its lease runs out while it is in flight; B then
    // refreshes (rotating the refresh token) and only afterwards does A's request land.
    const held = env.proxy.inject({ method: 'POST', path: '/token', action: { type: 'hold' }, times: 1 });
    const aResult = a.getToken(env.server);
    await held.arrived;
    await sleep(400);
    const bToken = await b.getToken(env.server);
    held.release();
    const aToken = await aResult;

    assert.equal(env.as.counters.count('refresh_token', 'ok'), 1);
    assert.equal(env.as.counters.count('refresh_token', 'invalid_grant'), 1, "A's stale token was refused");
    assert.equal(aToken.token, bToken.token, 'A adopted the tokens B wrote');
    const [cred] = await storeA.listCredentials({ server: env.server });
    assert.equal(cred?.status.state, 'valid', 'no needs-login');
    const events = await storeA.readEvents({ server: env.server });
    assert.ok(events.some((e) => e.type === 'adopted' && e.detail?.['reason'] === 'stale-refresh-token'));
    assert.ok(!events.some((e) => e.type === 'needs-login'));
    assert.ok((await env.as.introspect(aToken.token)).active);
  });

  it('a real invalid_grant moves the credential to needs-login and names the server', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 1, rotateRefreshToken: true });
    const store = await env.openStore();
    await env.login(store);
    const manager = env.manager(store, { proactiveRefresh: false });
    await manager.getToken(env.server);
    await env.as.revokeAllGrants(); // the user revoked access at the AS
    await sleep(1100);

    await assert.rejects(manager.getToken(env.server), (error: unknown) => {
      assert.ok(isLatchkeyError(error));
      assert.equal(error.code, 'LOGIN_REQUIRED');
      assert.equal(error.retryable, false);
      assert.equal(error.server, env?.server);
      assert.ok(cliMessage(error).includes(`latchkey login ${env?.server}`), cliMessage(error));
      return true;
    });
    assert.equal(env.as.counters.count('refresh_token', 'invalid_grant'), 1);
    const [cred] = await store.listCredentials({ server: env.server });
    assert.equal(cred?.status.state, 'needs-login', 'kept, and marked');
    const events = await store.readEvents({ server: env.server });
    assert.equal(events.filter((e) => e.type === 'needs-login').length, 1);

    // A second caller does not hammer the AS with the dead refresh token.
    await assert.rejects(manager.getToken(env.server), /LOGIN_REQUIRED|login required/);
    assert.equal(env.as.counters.count('refresh_token'), 1);
  });
});
