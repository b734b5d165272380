import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { AcquireHook } from '../../src/lifecycle/acquire.js';
import { isLatchkeyError } from '../../src/errors.js';
import { obtainTokens } from '../harness/index.js';
import { type LifecycleEnv, lifecycleEnv } from '../support/lifecycle-env.js';

/** Logs in at the real AS but keeps no refresh token, as an AS that issues none would. */
function noRefreshHook(env: LifecycleEnv): AcquireHook & { runs: number } {
  const hook = Object.assign(
    async (request: Parameters<AcquireHook>[0]) => {
      hook.runs++;
      const tokens = await obtainTokens(env.as, { resource: request.server, subject: request.subject });
      const { refresh_token: _dropped, ...response } = tokens.response;
      return { issuer: tokens.issuer, clientId: tokens.clientId, requestedAt: tokens.requestedAt, response };
    },
    { runs: 0 },
  );
  return hook;
}

/**
 * A server rejects an access token that has not expired (revoked, or the server restarted
 * with new keys) and there is no refresh token: only a new login helps. The caller that saw
 * the 401 must not get the dead token again, and neither must the login that follows, which
 * asks without naming the rejected token (the proxy's authorizer does).
 */
describe('a rejected access token with no refresh token', () => {
  let env: LifecycleEnv;
  before(async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
  });
  after(async () => env.close());

  it('is never handed out again: LOGIN_REQUIRED says it was rejected, and the next interactive call logs in', async () => {
    const hook = noRefreshHook(env);
    const manager = env.manager(await env.openStore(), { acquire: hook });
    try {
      const first = await manager.getAccessToken(env.server, { interactive: true });
      assert.equal(hook.runs, 1);
      assert.equal(await manager.getAccessToken(env.server, { interactive: false }), first, 'valid: served');

      await assert.rejects(
        manager.getAccessToken(env.server, { interactive: false, rejectedToken: first }),
        (error) => {
          assert.ok(isLatchkeyError(error));
          assert.equal(error.code, 'LOGIN_REQUIRED');
          assert.equal(error.server, env.server);
          assert.match(error.message, /rejected the access token/);
          assert.ok(!error.message.includes(first));
          return true;
        },
      );
      // Without the rejected token named, as a login after that 401 asks.
      await assert.rejects(
        manager.getAccessToken(env.server, { interactive: false }),
        /rejected the access token/,
      );
      const second = await manager.getAccessToken(env.server, { interactive: true });
      assert.equal(hook.runs, 2, 'a new login ran');
      assert.notEqual(second, first);
      assert.equal(await manager.getAccessToken(env.server, { interactive: false }), second);
    } finally {
      manager.close();
    }
  });
});
