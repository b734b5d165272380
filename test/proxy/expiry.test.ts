import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { proxyEnv, type ProxyEnv, text } from '../support/proxy-env.js';

/** The acceptance soak is 60 s; LATCHKEY_SOAK_MS shortens it for a quick local run. */
const SOAK_MS = Number(process.env['LATCHKEY_SOAK_MS'] ?? 60_000);

describe('latchkey proxy: access tokens expiring mid-session', () => {
  let env: ProxyEnv;
  before(async () => {
    env = await proxyEnv({ accessTokenTtl: 3 });
    await env.seedLogin();
  });
  after(async () => env.close());

  it('a call every 200 ms across many 3-s token lifetimes: no failed call, no login', async () => {
    const host = await env.host(['--login', 'never']);
    const grantsBefore = env.as.counters.snapshot();
    let calls = 0;
    const failures: string[] = [];
    const deadline = Date.now() + SOAK_MS;
    while (Date.now() < deadline) {
      const started = Date.now();
      try {
        const result = await host.client.callTool({ name: 'echo', arguments: { text: `n${calls}` } });
        if (text(result) !== `n${calls}`) failures.push(`wrong answer ${text(result)}`);
      } catch (error) {
        failures.push(String(error));
      }
      calls++;
      await new Promise((r) => setTimeout(r, Math.max(0, 200 - (Date.now() - started))));
    }
    const grants = env.as.counters.snapshot();
    const refreshes = (grants['refresh_token']?.['ok'] ?? 0) - (grantsBefore['refresh_token']?.['ok'] ?? 0);
    assert.deepEqual(failures, [], host.stderr());
    assert.ok(calls >= SOAK_MS / 250, `only ${calls} calls ran`);
    // Every lifetime needs one refresh; none may be wasted or rejected.
    assert.ok(refreshes >= Math.floor(SOAK_MS / 3000) - 1, `only ${refreshes} refreshes in ${SOAK_MS} ms`);
    assert.equal(grants['refresh_token']?.['invalid_grant'] ?? 0, 0);
    assert.equal(
      (grants['authorization_code']?.['ok'] ?? 0) - (grantsBefore['authorization_code']?.['ok'] ?? 0),
      0,
      'no interactive login may happen',
    );
    assert.equal(env.mcp.counters.count('session', 'created'), 1, 'the session survives refreshes');
  });
});
