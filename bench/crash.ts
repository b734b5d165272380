// `npm run bench crash`: how often does kill -9 during a refresh lose the credential?
//
// A worker process refreshes against the real AS (rotation on) through the fault proxy and is
// killed with SIGKILL at a moment drawn uniformly from the token request's round trip: from
// the request's arrival at the proxy over twice the median time until the refreshed
// credential is back from the store, as calibrated on unkilled refreshes. A kill loses the credential when the AS rotated the
// refresh token (it answered 200) but the store still holds the old generation: the only
// copy of the new refresh token died with the process. Prints kills per loss.
import { fileURLToPath } from 'node:url';

import type { CredentialStore } from '../src/store/contract.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../test/support/lifecycle-env.js';
import { startWorker, type Worker } from '../test/support/worker.js';

const WORKER = fileURLToPath(new URL('./crash-worker.ts', import.meta.url));

export interface CrashOptions {
  /** Kills to make. Default 60 (about two minutes); `--kills N` or LATCHKEY_BENCH_KILLS. */
  kills?: number;
  /** Unkilled refreshes that calibrate the round trip. Default 8. */
  calibrations?: number;
}

type Outcome = 'before-rotation' | 'persisted' | 'lost';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

export async function benchCrash(options: CrashOptions = {}) {
  const kills = options.kills ?? 60;
  const env = await lifecycleEnv({ rotateRefreshToken: true });
  const store = await env.openStore();
  const spawn = (): Worker => startWorker(WORKER, { ...env.env, LK_PROACTIVE: '0' });
  // The next worker starts while the last one's outcome is judged (tsx start-up is the slow
  // part), never during a refresh: its opening of the store would compete for the write lock.
  let spare = spawn();
  const nextWorker = async (): Promise<Worker> => {
    await spare.next((m) => m.type === 'ready');
    return spare;
  };
  try {
    const timeline = { toAnswer: [] as number[], toStored: [] as number[], answerToStored: [] as number[] };
    for (let i = 0; i < (options.calibrations ?? 8); i++) {
      const worker = await nextWorker();
      const { arrived } = await armed(env, store, worker);
      worker.send({ cmd: 'refresh' });
      const at = await arrived;
      const done = await worker.next<{ type: string; answeredAt: number; storedAt: number }>(
        (m) => m.type === 'refreshed' || m.type === 'failed',
      );
      if (done.type !== 'refreshed') throw new Error('a calibration refresh failed');
      timeline.toAnswer.push(done.answeredAt - at);
      timeline.toStored.push(done.storedAt - at);
      timeline.answerToStored.push(done.storedAt - done.answeredAt);
      worker.kill('SIGKILL');
      spare = spawn();
    }
    // Twice the median round trip: the whole of a typical refresh, and a span that one slow
    // calibration run on a loaded machine does not stretch (kills per loss scales with it).
    const spanMs = Math.ceil(median(timeline.toStored) * 2);
    const outcomes: Record<Outcome, number> = { 'before-rotation': 0, persisted: 0, lost: 0 };
    for (let i = 0; i < kills; i++) {
      const worker = await nextWorker();
      const { arrived, processed, before } = await armed(env, store, worker);
      worker.send({ cmd: 'refresh' });
      await arrived;
      await sleep(Math.random() * spanMs);
      worker.kill('SIGKILL');
      await worker.exited;
      spare = spawn();
      // The AS finishes (or never starts) the exchange whatever the client did.
      await Promise.race([processed, sleep(1000)]);
      const rotated = env.as.counters.count('refresh_token', 'ok') > 0;
      const [after] = await store.listCredentials({ server: env.server });
      const moved = after !== undefined && after.generation > before;
      outcomes[!rotated ? 'before-rotation' : moved ? 'persisted' : 'lost']++;
    }
    return {
      kills,
      drawnUniformlyOverMs: spanMs,
      killedBeforeRotation: outcomes['before-rotation'],
      killedAfterPersisting: outcomes.persisted,
      lost: outcomes.lost,
      killsPerLoss: outcomes.lost === 0 ? `> ${kills} (no loss)` : (kills / outcomes.lost).toFixed(1),
      lossWindowMsEstimate: ((outcomes.lost / kills) * spanMs).toFixed(1),
      medianArrivalToAnswerMs: median(timeline.toAnswer),
      medianAnswerToStoredMs: median(timeline.answerToStored),
      medianArrivalToStoredMs: median(timeline.toStored),
    };
  } finally {
    spare.kill('SIGKILL');
    await env.close();
  }
}

/** A freshly logged-in credential, read by `worker`, and a watch on its next token request. */
async function armed(env: LifecycleEnv, store: CredentialStore, worker: Worker) {
  await env.login(store);
  const [cred] = await store.listCredentials({ server: env.server });
  if (cred === undefined) throw new Error('the login stored nothing');
  worker.send({ cmd: 'arm' });
  await worker.next((m) => m.type === 'armed');
  env.as.counters.reset();
  env.proxy.clear();
  const rule = env.proxy.inject({
    method: 'POST',
    path: '/token',
    exact: true,
    times: 1,
    action: { type: 'delay', ms: 0 },
  });
  return {
    arrived: rule.arrived.then(() => Date.now()),
    processed: rule.processed,
    before: cred.generation,
  };
}
