import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { type LifecycleEnv, lifecycleEnv } from '../support/lifecycle-env.js';
import { startWorker, type Worker } from '../support/worker.js';

const WORKER = fileURLToPath(new URL('../fixtures/manager-worker.ts', import.meta.url));

interface Result {
  tokens: string[];
  errors: unknown[];
  stats: { acquisitions: number };
}

/**
 * Hosts often start several copies of a server's process at once. With no credential
 * stored, only one of them may run the interactive login (one browser tab); the others
 * wait and adopt its result.
 */
describe('interactive login is single-flight across processes', () => {
  let env: LifecycleEnv;
  const workers: Worker[] = [];
  before(async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
  });
  after(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await env.close();
  });

  it('4 processes x 5 callers with no credential: one login, one token for all', async () => {
    const workerEnv = { ...env.env, LK_LOGIN_ISSUER: env.as.issuer, LK_LOGIN_CLIENT_ID: env.as.clientId };
    for (let i = 0; i < 4; i++) workers.push(startWorker(WORKER, workerEnv));
    await Promise.all(workers.map((w) => w.next((m) => m.type === 'ready')));
    const results = workers.map((w) => w.next<Result>((m) => m.type === 'result'));
    for (const w of workers) w.send({ cmd: 'get', callers: 5 });
    const all = await Promise.all(results);

    assert.deepEqual(
      all.flatMap((r) => r.errors),
      [],
    );
    assert.equal(new Set(all.flatMap((r) => r.tokens)).size, 1, 'every caller got the same token');
    assert.equal(all.flatMap((r) => r.tokens).length, 20);
    assert.equal(
      all.reduce((n, r) => n + r.stats.acquisitions, 0),
      1,
      'exactly one process ran the login',
    );
    assert.equal(env.as.counters.count('authorization_code'), 1, 'the AS saw one code exchange');
    for (const w of workers) w.send({ cmd: 'exit' });
    await Promise.all(workers.map((w) => w.exited));
  });
});
