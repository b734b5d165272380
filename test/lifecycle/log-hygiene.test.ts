import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createLogger } from '../../src/log.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';

/**
 * Every token that passes through a manager logging at debug level, through a login,
 * refreshes, an outage and a rejected grant, must be absent from everything it logged.
 */
describe('log hygiene', () => {
  let env: LifecycleEnv;
  before(async () => {
    env = await lifecycleEnv({ accessTokenTtl: 1, rotateRefreshToken: true });
  });
  after(() => env.close());

  it('no token string appears in any log line', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (line) => lines.push(line) });
    const store = await env.openStore();
    await env.login(store);
    const manager = env.manager(store, { logger, proactiveRefresh: false });
    const tokens = new Set<string>();
    const remember = async (): Promise<void> => {
      for (const c of await store.listCredentials()) {
        tokens.add(c.secrets.accessToken);
        if (c.secrets.refreshToken !== undefined) tokens.add(c.secrets.refreshToken);
      }
    };
    await remember();
    for (let i = 0; i < 2; i++) {
      await sleep(1100);
      tokens.add(await manager.getAccessToken(env.server));
      await remember();
    }
    await sleep(1100);
    const outage = env.proxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      action: { type: 'status', status: 503 },
    });
    const duringOutage = await manager.getAccessToken(env.server).catch((e: unknown) => e);
    env.proxy.clear(outage);
    // Not a pass by accident: the outage was hit and surfaced as the transient failure it is,
    // and the revoked grant really was refused, so both paths wrote their log lines.
    assert.ok(outage.hits >= 1, 'the token endpoint answered 503 at least once');
    assert.equal((duringOutage as { code?: string }).code, 'REFRESH_TRANSIENT', String(duringOutage));
    await env.as.revokeAllGrants();
    await sleep(1100);
    const afterRevoke = await manager.getAccessToken(env.server).catch((e: unknown) => e);
    assert.equal((afterRevoke as { code?: string }).code, 'LOGIN_REQUIRED', String(afterRevoke));
    await remember();

    assert.ok(tokens.size >= 4, 'several tokens went through the manager');
    assert.ok(lines.length > 0, 'the manager did log');
    const text = lines.join('\n');
    for (const token of tokens) assert.ok(!text.includes(token), 'a token leaked into the log');
  });
});
