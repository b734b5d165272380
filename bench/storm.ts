// The refresh storm of issue 2, as a measurement: 8 processes x 25 callers on one SQLite
// store, an expired access token, rotation on. Prints what the AS saw and how long callers
// waited for a token. Runs several rounds; each round starts from a freshly expired token.
import { fileURLToPath } from 'node:url';

import { lifecycleEnv, sleep } from '../test/support/lifecycle-env.js';
import { startWorker } from '../test/support/worker.js';

const WORKER = fileURLToPath(new URL('../test/fixtures/manager-worker.ts', import.meta.url));

interface Result {
  startedAt: number;
  doneAt: number[];
  errors: unknown[];
}

export async function benchStorm(options: { processes?: number; callers?: number; rounds?: number } = {}) {
  const processes = options.processes ?? 8;
  const callers = options.callers ?? 25;
  const rounds = options.rounds ?? 5;
  const env = await lifecycleEnv({ accessTokenTtl: 1, rotateRefreshToken: true });
  const store = await env.openStore();
  await env.login(store);
  const workers = Array.from({ length: processes }, () =>
    startWorker(WORKER, { ...env.env, LK_PROACTIVE: '0' }),
  );
  try {
    await Promise.all(workers.map((w) => w.next((m) => m.type === 'ready')));
    const latencies: number[] = [];
    let refreshes = 0;
    let invalidGrants = 0;
    let errors = 0;
    for (let round = 0; round < rounds; round++) {
      await sleep(1150); // the 1 s token has expired (plus the clamped skew)
      env.as.counters.reset();
      const pending = workers.map((w) => w.next<Result>((m) => m.type === 'result'));
      for (const w of workers) w.send({ cmd: 'get', callers });
      for (const r of await Promise.all(pending)) {
        latencies.push(...r.doneAt.map((t) => t - r.startedAt));
        errors += r.errors.length;
      }
      refreshes += env.as.counters.count('refresh_token');
      invalidGrants += env.as.counters.count('refresh_token', 'invalid_grant');
    }
    latencies.sort((a, b) => a - b);
    const pct = (p: number): number =>
      latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
    return {
      rounds,
      callersPerRound: processes * callers,
      refreshRequestsPerRound: refreshes / rounds,
      invalidGrant: invalidGrants,
      callerErrors: errors,
      p50Ms: pct(0.5),
      p99Ms: pct(0.99),
      maxMs: latencies.at(-1) ?? NaN,
    };
  } finally {
    for (const w of workers) w.send({ cmd: 'exit' });
    await Promise.all(workers.map((w) => w.exited));
    await env.close();
  }
}
