import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { type LifecycleEnv, lifecycleEnv } from '../support/lifecycle-env.js';
import { startWorker } from '../support/worker.js';

const WORKER = fileURLToPath(new URL('../fixtures/manager-worker.ts', import.meta.url));

interface Result {
  tokens: string[];
  errors: unknown[];
  stats: { acquisitions: number; refreshRequests: number };
}

describe('restart reuse', () => {
  let env: LifecycleEnv;
  before(async () => {
    env = await lifecycleEnv({ accessTokenTtl: 600 });
  });
  after(() => env.close());

  it('a credential obtained by one process serves the next one with zero AS requests', async () => {
    const workerEnv = { ...env.env, LK_LOGIN_ISSUER: env.as.issuer, LK_LOGIN_CLIENT_ID: env.as.clientId };

    const first = startWorker(WORKER, workerEnv);
    await first.next((m) => m.type === 'ready');
    first.send({ cmd: 'get', callers: 4 });
    const got = await first.next<Result>((m) => m.type === 'result');
    assert.deepEqual(got.errors, []);
    assert.equal(got.stats.acquisitions, 1, 'the first process logged in once for its 4 callers');
    assert.equal(env.as.counters.count('authorization_code', 'ok'), 1);
    first.send({ cmd: 'exit' });
    assert.equal((await first.exited).code, 0);

    const store = await env.openStore();
    assert.equal((await store.listCredentials({ server: env.server })).length, 1, 'shutdown deleted nothing');

    const seenBefore = env.proxy.seen().length;
    env.as.counters.reset();
    const second = startWorker(WORKER, workerEnv);
    await second.next((m) => m.type === 'ready');
    second.send({ cmd: 'get', callers: 4 });
    const reused = await second.next<Result>((m) => m.type === 'result');
    second.send({ cmd: 'exit' });
    await second.exited;

    assert.deepEqual(reused.errors, []);
    assert.deepEqual(new Set(reused.tokens), new Set(got.tokens), 'the same token, from the store');
    assert.equal(reused.stats.acquisitions + reused.stats.refreshRequests, 0);
    assert.equal(env.proxy.seen().length, seenBefore, 'the second process sent nothing to the AS');
    assert.deepEqual(env.as.counters.snapshot(), {});
  });
});
