// Refresh-on-read (what LibreChat and LiteLLM do) against latchkey's fleet pattern, on the
// same PostgreSQL store, the same token endpoint and the same user traffic (issue 16):
//   - refresh-on-read (refresh-on-read.ts): the request that finds its user's token expired
//     (within the skew margin) takes the credential's lease and refreshes inline; requests
//     arriving meanwhile wait for it;
//   - latchkey: a refresher process (fleet-worker.ts, default options) refreshes ahead of
//     expiry, and the gateway's CredentialManager serves the requests, seeing new tokens
//     through LISTEN/NOTIFY; with `proactiveRefresh: 'refresher'` it leaves refreshing ahead
//     to the refresher, and the figures say who sent each refresh.
// Users send requests at random (a Poisson process each, the same seeded schedule for both);
// a request is one getAccessToken. The token endpoint answers after a fixed delay standing
// for a real AS's round trip, so a request that waited on a refresh shows in its latency.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { CredentialManager } from '../src/lifecycle/manager.js';
import { silentLogger } from '../src/log.js';
import { openPostgresStore } from '../src/store/postgres.js';
import { freshDatabase } from '../test/support/postgres.js';
import { startWorker, type Worker } from '../test/support/worker.js';
import { startTokenEndpoint, type TokenEndpoint } from './fleet-endpoint.js';
import { BENCH_SERVER, seedCredentials, seedIssuer } from './fleet-seed.js';
import { RefreshOnRead } from './refresh-on-read.js';

const WORKER = fileURLToPath(new URL('./fleet-worker.ts', import.meta.url));

export interface PatternsSetup {
  users: number;
  /** Access-token lifetime, seconds. */
  ttlS: number;
  durationS: number;
  /** Mean time between one user's requests, ms. */
  meanGapMs: number;
  /** The token endpoint's answer delay, ms. */
  asDelayMs: number;
}

export function patternsSetup(quick: boolean): PatternsSetup {
  return quick
    ? { users: 100, ttlS: 20, durationS: 30, meanGapMs: 1000, asDelayMs: 100 }
    : { users: 300, ttlS: 30, durationS: 75, meanGapMs: 1500, asDelayMs: 100 };
}

interface PatternResult {
  requests: number;
  /** Requests slower than the AS round trip: they sat behind a token request. */
  slow: number;
  /** Requests that sat behind a token request (the pattern's own count). */
  waited: number;
  /** Who sent the refreshes: [what], [count]. */
  refreshedBy: string;
  failed: number;
  latencies: number[];
  asRefreshes: number;
}

export async function benchPatterns(quick: boolean): Promise<[string, Record<string, string | number>]> {
  const setup = patternsSetup(quick);
  const endpoint = await startTokenEndpoint({ expiresInS: setup.ttlS, delayMs: setup.asDelayMs });
  try {
    const schedule = arrivals(setup);
    const onRead = await runPattern('read', setup, schedule, endpoint);
    const ours = await runPattern('latchkey', setup, schedule, endpoint);
    const title =
      `refresh-on-read (LibreChat, LiteLLM) vs latchkey (refresher + manager reads), same Postgres store: ` +
      `${setup.users} users, ${setup.ttlS}-s tokens, a request per user every ${setup.meanGapMs / 1000} s ` +
      `on average (Poisson), ${setup.durationS} s, AS round trip ${setup.asDelayMs} ms; latchkey goal: 0 waits`;
    return [title, { ...figures('refresh-on-read', onRead, setup), ...figures('latchkey', ours, setup) }];
  } finally {
    await endpoint.close();
  }
}

function figures(label: string, r: PatternResult, setup: PatternsSetup): Record<string, string | number> {
  const sorted = [...r.latencies].sort((a, b) => a - b);
  const pct = (p: number): string =>
    `${(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN).toFixed(2)} ms`;
  return {
    [`${label}: user requests`]: r.requests,
    [`${label}: requests that waited on a refresh`]: r.waited,
    [`${label}: requests slower than the AS round trip (${setup.asDelayMs} ms)`]: r.slow,
    [`${label}: request latency p50 / p99 / max`]: `${pct(0.5)} / ${pct(0.99)} / ${(sorted.at(-1) ?? NaN).toFixed(1)} ms`,
    [`${label}: failed requests`]: r.failed,
    [`${label}: refreshes at the AS (sent by)`]: `${r.asRefreshes} (${r.refreshedBy})`,
  };
}

/** Each user's request times (ms from the start): a seeded Poisson process, the same for both runs. */
function arrivals(setup: PatternsSetup): { at: number; user: number }[] {
  let state = 0x9e3779b9;
  const random = (): number => {
    // xorshift32: reproducible, and good enough for arrival gaps.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
  const out: { at: number; user: number }[] = [];
  for (let user = 0; user < setup.users; user++) {
    for (let at = -Math.log(1 - random()) * setup.meanGapMs; at < setup.durationS * 1000;) {
      out.push({ at, user });
      at += -Math.log(1 - random()) * setup.meanGapMs;
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

async function runPattern(
  pattern: 'read' | 'latchkey',
  setup: PatternsSetup,
  schedule: { at: number; user: number }[],
  endpoint: TokenEndpoint,
): Promise<PatternResult> {
  const db = await freshDatabase();
  const key = randomBytes(32).toString('base64');
  const env = { LATCHKEY_KEY: key };
  const store = await openPostgresStore({ url: db.url, env, poolMax: 8 });
  let worker: Worker | undefined;
  const manager = new CredentialManager({ store, logger: silentLogger, proactiveRefresh: 'refresher' });
  const onRead = new RefreshOnRead(store, endpoint.issuer);
  try {
    await seedIssuer(store, endpoint.issuer);
    // Logged in over the last half lifetime: expiries spread, none synchronized.
    const now = Date.now();
    const ttlMs = setup.ttlS * 1000;
    for (let i = 0; i < setup.users; i++) {
      const obtainedAt = now - ((i * 7919) % setup.users) * (ttlMs / 2 / setup.users);
      await seedCredentials(store, endpoint.issuer, 1, {
        prefix: `u${i}`,
        obtainedAt,
        expiresAt: obtainedAt + ttlMs,
      });
    }
    if (pattern === 'latchkey') {
      worker = startWorker(WORKER, { LATCHKEY_STORE: db.url, LATCHKEY_KEY: key, LK_BENCH_REFRESHER: '{}' });
      await worker.next((m) => m.type === 'ready', 120_000);
      worker.send({ cmd: 'go' });
    }
    const before = endpoint.refreshes;
    const request =
      pattern === 'read'
        ? async (subject: string) => (await onRead.getToken(subject)).waited
        : async (subject: string) => {
            const waitedBefore = manager.stats.callersWaitedOnRefresh;
            await manager.getAccessToken(BENCH_SERVER, { subject });
            return manager.stats.callersWaitedOnRefresh > waitedBefore;
          };
    const result = await drive(request, setup, schedule);
    const asRefreshes = endpoint.refreshes - before;
    let refreshedBy = `the requests ${onRead.refreshRequests}`;
    if (worker !== undefined) {
      worker.send({ cmd: 'exit' });
      const closed = await worker.next<{ stats: { refreshed: number } }>((m) => m.type === 'closed', 30_000);
      refreshedBy = `refresher ${closed.stats.refreshed}, manager ${manager.stats.refreshRequests}`;
    }
    return { ...result, asRefreshes, refreshedBy };
  } finally {
    manager.close();
    worker?.kill('SIGKILL');
    await store.close();
    await db.drop();
  }
}

/**
 * Fire every request at its time (not one after another: a slow one must not delay the next).
 * `request` says whether that request waited on a refresh. With the manager, concurrent
 * requests make that count approximate (another request's wait can land in this one's
 * window); the latency column does not depend on it.
 */
async function drive(
  request: (subject: string) => Promise<boolean>,
  setup: PatternsSetup,
  schedule: { at: number; user: number }[],
): Promise<Omit<PatternResult, 'refreshedBy' | 'asRefreshes'>> {
  const latencies: number[] = [];
  let failed = 0;
  let waited = 0;
  const pending: Promise<void>[] = [];
  const started = performance.now();
  for (const { at, user } of schedule) {
    const wait = started + at - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    pending.push(
      (async () => {
        const t0 = performance.now();
        try {
          if (await request(`u${user}-0`)) waited++;
          latencies.push(performance.now() - t0);
        } catch {
          failed++;
        }
      })(),
    );
  }
  await Promise.all(pending);
  const slow = latencies.filter((ms) => ms >= setup.asDelayMs).length;
  return { requests: schedule.length, slow, waited, failed, latencies };
}
