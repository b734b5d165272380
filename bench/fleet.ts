// `npm run bench fleet` (issue 16): the fleet refresher on a real PostgreSQL server (the
// run's LATCHKEY_TEST_PG_URL, else a private throwaway cluster), refresher instances as
// separate OS processes, against the minimal token endpoint of fleet-endpoint.ts:
//   - refreshes per second per instance, 1 and 3 instances, per-AS limits lifted, and the
//     database statements each refresh costs;
//   - the time 3 instances take to drain a backlog at a stated per-AS limit.
//   - refresh-on-read against latchkey's pattern, side by side (fleet-patterns.ts).
// RSS for 10k and 100k credentials is the scale bench, which `bench fleet` runs after this.
// Measurements, not tests: nothing here fails on a slow machine.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

import type { RefresherOptions } from '../src/lifecycle/refresher/options.js';
import type { RefresherStats } from '../src/lifecycle/refresher/events.js';
import { openPostgresStore } from '../src/store/postgres.js';
import { adminQuery, freshDatabase, type TestDatabase } from '../test/support/postgres.js';
import { startWorker, type Worker } from '../test/support/worker.js';
import { startTokenEndpoint, type TokenEndpoint } from './fleet-endpoint.js';
import { benchPatterns } from './fleet-patterns.js';
import { seedCredentials, seedIssuer } from './fleet-seed.js';

const WORKER = fileURLToPath(new URL('./fleet-worker.ts', import.meta.url));
const GOAL_PER_INSTANCE = 1000;

export interface FleetOptions {
  quick?: boolean;
  /** Directory for `--cpu-prof` profiles of the refresher processes, when wanted. */
  cpuProfDir?: string;
  /** Only the throughput figures (1 and 3 instances): for comparing changes back to back. */
  throughputOnly?: boolean;
}

type Figures = Record<string, string | number>;

interface Closed {
  stats: RefresherStats;
  statements: number;
  /** The refresher process's CPU time (user + system) while it refreshed. */
  cpuMs: number;
  errors: string[];
}

interface RunResult {
  elapsedMs: number;
  refreshes: number;
  closed: Closed[];
  commits: number;
  perSecond: number[];
  /** CPU time of this process (the token endpoint and the bench's polling) during the run. */
  endpointCpuMs: number;
  /** CPU time of the database's server processes during the run (undefined: not readable). */
  postgresCpuMs: number | undefined;
}

/** No per-AS limit worth the name: what the refresher itself can do. */
const UNLIMITED: Omit<RefresherOptions, 'store'> = {
  perIssuerRatePerSecond: 1_000_000,
  perIssuerBurst: 1_000_000,
  perIssuerConcurrency: 64,
  maxConcurrency: 64,
};

export async function benchFleet(options: FleetOptions = {}): Promise<[string, Figures][]> {
  const quick = options.quick === true;
  const endpoint = await startTokenEndpoint({ expiresInS: 3600 });
  try {
    const out: [string, Figures][] = [];
    const perInstance = quick ? 1000 : 3000;
    // The machine is shared: say how busy it was, since every figure below depends on it.
    const load = loadavg()[0]?.toFixed(2) ?? '?';
    const one = await measure(endpoint, 1, perInstance, UNLIMITED, options);
    const three = await measure(endpoint, 3, perInstance * 3, UNLIMITED, options);
    out.push([
      `fleet refresher throughput: minimal node:http token endpoint, per-AS limits lifted, ` +
        `goal >= ${GOAL_PER_INSTANCE}/s per instance`,
      {
        'machine: cores, load average (1 min) at the start': `${availableParallelism()}, ${load}`,
        ...throughputFigures('1 instance', one, 1),
        ...throughputFigures('3 instances', three, 3),
      },
    ]);
    if (options.throughputOnly === true) return out;
    const backlog = quick ? 5000 : 20_000;
    const perInstanceRate = 150;
    const drain = await measure(
      endpoint,
      3,
      backlog,
      { perIssuerRatePerSecond: perInstanceRate, perIssuerConcurrency: 16, maxConcurrency: 64 },
      options,
    );
    out.push([
      `drain a backlog of ${backlog} due credentials, one AS, 3 instances x ${perInstanceRate}/s ` +
        `(fleet limit ${3 * perInstanceRate}/s, burst = rate, 16 in flight per instance)`,
      drainFigures(drain, backlog, 3 * perInstanceRate),
    ]);
    out.push(await benchPatterns(quick));
    return out;
  } finally {
    await endpoint.close();
  }
}

function throughputFigures(label: string, r: RunResult, instances: number): Figures {
  const perInstance = r.refreshes / (r.elapsedMs / 1000) / instances;
  const statements = r.closed.reduce((n, c) => n + c.statements, 0);
  return {
    [`${label}: refreshes, wall s`]: `${r.refreshes}, ${(r.elapsedMs / 1000).toFixed(1)}`,
    [`${label}: refreshes/s per instance (ratio to goal)`]: `${Math.round(perInstance)} (${(perInstance / GOAL_PER_INSTANCE).toFixed(2)}x)`,
    [`${label}: refreshes/s all instances`]: Math.round(r.refreshes / (r.elapsedMs / 1000)),
    [`${label}: refreshed per instance`]: r.closed.map((c) => c.stats.refreshed).join(' + '),
    [`${label}: SQL statements per refresh (pg client, incl. BEGIN/COMMIT)`]: (
      statements / r.refreshes
    ).toFixed(1),
    [`${label}: transactions per refresh (pg_stat_database)`]: (r.commits / r.refreshes).toFixed(1),
    ...cpuFigures(label, r),
    [`${label}: failures seen`]: failures(r),
  };
}

/**
 * Where the CPU went, per refresh. The wall-clock rate is bounded by the 2 shared cores, which
 * the token endpoint and PostgreSQL use too; the refresher's own CPU time per refresh is what
 * latchkey costs, and 1000 / that is the rate one instance would reach with a core to itself.
 */
function cpuFigures(label: string, r: RunResult): Figures {
  const per = (ms: number): string => (ms / r.refreshes).toFixed(3);
  const refresher = r.closed.reduce((n, c) => n + c.cpuMs, 0);
  const perInstance = refresher / r.closed.length / (r.refreshes / r.closed.length);
  return {
    [`${label}: CPU ms per refresh: refresher / token endpoint + bench / postgres`]: `${per(refresher)} / ${per(
      r.endpointCpuMs,
    )} / ${r.postgresCpuMs === undefined ? '?' : per(r.postgresCpuMs)}`,
    [`${label}: refreshes per refresher CPU second (one core each)`]: Math.round(1000 / perInstance),
  };
}

function drainFigures(r: RunResult, backlog: number, fleetLimit: number): Figures {
  const windows = r.perSecond;
  // The first and last seconds are partial; the limit is judged on whole ones.
  const whole = windows.slice(1, -1);
  return {
    'drain time s (first refresh to last)': (r.elapsedMs / 1000).toFixed(1),
    'ideal at the fleet limit s': (backlog / fleetLimit).toFixed(1),
    'refreshes at the AS / backlog': `${r.refreshes} / ${backlog}`,
    'AS refreshes per whole second: max / mean': `${Math.max(0, ...whole)} / ${(
      whole.reduce((a, b) => a + b, 0) / Math.max(1, whole.length)
    ).toFixed(0)}`,
    'refreshed per instance': r.closed.map((c) => c.stats.refreshed).join(' + '),
    'failures seen': failures(r),
  };
}

function failures(r: RunResult): string {
  const transient = r.closed.reduce((n, c) => n + c.stats.transientFailures + c.stats.needsLogin, 0);
  const sample = r.closed.flatMap((c) => c.errors).slice(0, 2);
  return sample.length === 0 ? String(transient) : `${transient} (${sample.join('; ')})`;
}

/**
 * Seed `total` due credentials on a fresh database, start `instances` refresher processes,
 * release them together, and time the AS from their start to its `total`-th refresh.
 */
async function measure(
  endpoint: TokenEndpoint,
  instances: number,
  total: number,
  refresher: Omit<RefresherOptions, 'store'>,
  options: FleetOptions,
): Promise<RunResult> {
  const db = await freshDatabase();
  const key = randomBytes(32).toString('base64');
  const workers: Worker[] = [];
  try {
    await seed(db, key, endpoint.issuer, total);
    const commitsBefore = await commits(db);
    const env: Record<string, string> = {
      LATCHKEY_STORE: db.url,
      LATCHKEY_KEY: key,
      LK_BENCH_REFRESHER: JSON.stringify(refresher),
    };
    if (options.cpuProfDir !== undefined) env['LK_BENCH_CPU_PROF_DIR'] = options.cpuProfDir;
    for (let i = 0; i < instances; i++) workers.push(startWorker(WORKER, env));
    await Promise.all(workers.map((w) => w.next((m) => m.type === 'ready', 120_000)));
    const before = endpoint.refreshes;
    endpoint.resetWindows();
    const backendsBefore = await backendCpu(db);
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    for (const w of workers) w.send({ cmd: 'go' });
    let last = started;
    while (endpoint.refreshes - before < total) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      last = performance.now();
      if (last - started > 600_000) throw new Error(`fleet bench: stalled at ${endpoint.refreshes - before}`);
    }
    const cpu = process.cpuUsage(cpuBefore);
    const backendsAfter = await backendCpu(db);
    const perSecond = endpoint.perSecond();
    for (const w of workers) w.send({ cmd: 'exit' });
    const closed = await Promise.all(workers.map((w) => w.next<Closed>((m) => m.type === 'closed', 60_000)));
    await Promise.all(workers.map((w) => w.exited));
    // Backends report their counters when they exit; give the collector a moment.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return {
      elapsedMs: last - started,
      refreshes: endpoint.refreshes - before,
      closed,
      commits: (await commits(db)) - commitsBefore,
      perSecond,
      endpointCpuMs: (cpu.user + cpu.system) / 1000,
      postgresCpuMs: cpuSpent(backendsBefore, backendsAfter),
    };
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    await db.drop();
  }
}

/** Credentials obtained an hour ago that expire in ten minutes: all due, none expired. */
async function seed(db: TestDatabase, key: string, issuer: string, total: number): Promise<void> {
  const store = await openPostgresStore({ url: db.url, env: { LATCHKEY_KEY: key }, poolMax: 8 });
  try {
    await seedIssuer(store, issuer);
    const now = Date.now();
    await seedCredentials(store, issuer, total, {
      prefix: 'user',
      obtainedAt: now - 3_600_000,
      expiresAt: now + 600_000,
    });
  } finally {
    await store.close();
  }
}

async function commits(db: TestDatabase): Promise<number> {
  const { rows } = await adminQuery(db.url, 'SELECT xact_commit FROM pg_stat_database WHERE datname = $1', [
    db.name,
  ]);
  return Number((rows[0] as { xact_commit: string } | undefined)?.xact_commit ?? 0);
}

/** CPU ms of each server process connected to the database, from /proc (Linux only). */
async function backendCpu(db: TestDatabase): Promise<Map<number, number> | undefined> {
  const { rows } = await adminQuery(
    db.url,
    'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [db.name],
  );
  const out = new Map<number, number>();
  try {
    for (const { pid } of rows as { pid: number }[]) {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(pid, ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS);
    }
  } catch {
    return undefined; // not Linux, or the server runs elsewhere
  }
  return out;
}

/** USER_HZ: 100 on every Linux this runs on (sysconf(_SC_CLK_TCK)). */
const CLOCK_TICKS = 100;

/** A backend that started during the run counts from zero. */
function cpuSpent(
  before: Map<number, number> | undefined,
  after: Map<number, number> | undefined,
): number | undefined {
  if (before === undefined || after === undefined) return undefined;
  let sum = 0;
  for (const [pid, ms] of after) sum += ms - (before.get(pid) ?? 0);
  return sum;
}
