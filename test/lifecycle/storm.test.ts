import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { fingerprint } from '../../src/redact.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';
import { startWorker, type Worker } from '../support/worker.js';

const WORKER = fileURLToPath(new URL('../fixtures/manager-worker.ts', import.meta.url));
const PROCESSES = 8;
const CALLERS = 25;

interface Result {
  tokens: string[];
  errors: { code?: string; message: string }[];
  stats: { refreshRequests: number; adoptions: number };
}

describe('refresh storm: 8 processes x 25 callers, expired token, rotation on, no grace', () => {
  let env: LifecycleEnv;
  let workers: Worker[] = [];

  before(async () => {
    // 3-s tokens: the new token must stay usable while the slowest of 200 callers on a loaded
    // machine reaches it; a 1-s token is past its skew within half a second, and a late
    // process would rightly refresh it again.
    env = await lifecycleEnv({ accessTokenTtl: 3, rotateRefreshToken: true });
  });
  after(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await env.close();
  });

  it('sends exactly one refresh to the AS and every caller gets the new token', async () => {
    const store = await env.openStore();
    await env.login(store);
    const before = (await store.listCredentials({ server: env.server }))[0];
    assert.ok(before !== undefined);
    const oldToken = fingerprint(before.secrets.accessToken);

    workers = Array.from({ length: PROCESSES }, () => startWorker(WORKER, env.env));
    await Promise.all(workers.map((w) => w.next((m) => m.type === 'ready')));
    await sleep(3200); // let the 3-second access token expire
    env.as.counters.reset();

    const results = workers.map((w) => w.next<Result>((m) => m.type === 'result'));
    for (const w of workers) w.send({ cmd: 'get', callers: CALLERS });
    const all = await Promise.all(results);

    const errors = all.flatMap((r) => r.errors);
    assert.deepEqual(errors, [], 'no caller failed');
    const tokens = new Set(all.flatMap((r) => r.tokens));
    assert.equal(all.flatMap((r) => r.tokens).length, PROCESSES * CALLERS);
    assert.equal(tokens.size, 1, 'every caller got the same token');
    assert.ok(!tokens.has(oldToken), 'and it is the new one');

    assert.equal(env.as.counters.count('refresh_token'), 1, 'exactly one refresh request reached the AS');
    assert.equal(env.as.counters.count('refresh_token', 'invalid_grant'), 0);
    assert.equal(
      all.reduce((n, r) => n + r.stats.refreshRequests, 0),
      1,
    );

    const after = (await store.listCredentials({ server: env.server }))[0];
    assert.equal(after?.generation, before.generation + 1, 'one new generation was written');
    assert.equal(fingerprint(after.secrets.accessToken), [...tokens][0]);
    for (const w of workers) w.send({ cmd: 'exit' });
    await Promise.all(workers.map((w) => w.exited));
  });
});
