import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { ErrorCode, LatchkeyError } from '../../src/errors.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';

/**
 * The real store, whose next `n` token writes fail as a starved database does (a timeout):
 * no real server makes a write fail at exactly this moment on demand, so the fault is
 * injected at the store's edge, after the AS has really rotated the refresh token.
 */
function failingWrites(store: CredentialStore, n: number): CredentialStore & { failed: number } {
  let left = n;
  const state = { failed: 0 };
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'failed') return state.failed;
      if (prop === 'writeCredential' && left > 0) {
        return async () => {
          left--;
          state.failed++;
          throw new LatchkeyError(ErrorCode.STORE_UNAVAILABLE, 'the store timed out (injected).', {
            retryable: true,
          });
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as CredentialStore & { failed: number };
}

describe('the write of rotated tokens', () => {
  let env: LifecycleEnv | undefined;
  afterEach(() => env?.close());

  it('is tried again when the store fails transiently: the new refresh token is kept, no invalid_grant follows', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 1, rotateRefreshToken: true });
    const base = await env.openStore();
    await env.login(base);
    const store = failingWrites(base, 2);
    const manager = env.manager(store, { proactiveRefresh: false });
    try {
      await sleep(1100);
      const first = await manager.getToken(env.server);
      assert.equal(store.failed, 2, 'two writes failed before one went through');
      assert.equal(env.as.counters.count('refresh_token', 'ok'), 1, 'one refresh at the AS');
      const [stored] = await base.listCredentials({ server: env.server });
      assert.equal(stored?.generation, 2, 'the rotated tokens are stored');
      // (Not introspected: a 1-s token may have expired by then on a loaded machine.)
      assert.equal(stored?.secrets.accessToken, first.token, 'the caller got the stored token');

      // The stored refresh token is the rotated one: the next refresh is accepted.
      await sleep(1100);
      const second = await manager.getToken(env.server);
      assert.notEqual(second.token, first.token);
      assert.equal(env.as.counters.count('refresh_token', 'ok'), 2);
      assert.equal(env.as.counters.count('refresh_token', 'invalid_grant'), 0);
    } finally {
      manager.close();
    }
  });
});
