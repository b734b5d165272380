// One fleet refresher in its own OS process, for `npm run bench fleet`. It opens the
// Postgres store named by LATCHKEY_STORE, starts a refresher with the options in
// LK_BENCH_REFRESHER (JSON) on {"cmd":"go"} (so N processes start together; it says
// {"type":"ready"} once the store is open), and on {"cmd":"exit"} closes
// the refresher and the store and says {"type":"closed","stats":…,"statements":N,"cpuMs":N}.
// Statements are counted by wrapping pg's Client#query in this process only (every pool
// query and every BEGIN/COMMIT goes through it; LISTEN's notifications do not).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import pg from 'pg';

import { type Refresher, startRefresher } from '../src/lifecycle/refresher/refresher.js';
import type { RefresherOptions } from '../src/lifecycle/refresher/options.js';
import { silentLogger } from '../src/log.js';
import { openStore } from '../src/store/open.js';

let statements = 0;
/** With LK_BENCH_SQL_BREAKDOWN=1, statements counted by their first words too. */
const bySql = process.env['LK_BENCH_SQL_BREAKDOWN'] === '1' ? new Map<string, number>() : undefined;
const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
(pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown }).query = function (
  this: pg.Client,
  ...args: unknown[]
) {
  statements++;
  if (bySql !== undefined) {
    const arg = args[0] as string | { text?: string };
    const text = (typeof arg === 'string' ? arg : (arg.text ?? '')).replace(/\s+/g, ' ').slice(0, 70);
    bySql.set(text, (bySql.get(text) ?? 0) + 1);
  }
  return query.apply(this, args);
};

const say = (msg: Record<string, unknown>): void => void process.stdout.write(JSON.stringify(msg) + '\n');

const store = await openStore();
const options = JSON.parse(process.env['LK_BENCH_REFRESHER'] ?? '{}') as Omit<RefresherOptions, 'store'>;
// `--cpu-prof` is refused in NODE_OPTIONS; the inspector writes the same .cpuprofile file.
const profDir = process.env['LK_BENCH_CPU_PROF_DIR'];
const profiler = profDir === undefined ? undefined : new Session();

let atStart = statements;
/** This process's CPU time from `go` to `exit`: what the refreshing cost it, wherever it ran. */
let cpuAtStart = process.cpuUsage();
let refresher: Refresher | undefined;
const errors: string[] = [];
function go(): Refresher {
  atStart = statements;
  cpuAtStart = process.cpuUsage();
  if (profiler !== undefined) {
    profiler.connect();
    void profiler.post('Profiler.enable').then(() => profiler.post('Profiler.start'));
  }
  const started = startRefresher({ store, logger: silentLogger, ...options });
  started.on('event', (event) => {
    if (event.type === 'error') errors.push(`${event.error.code} (${causeOf(event.error)})`);
    if (event.type === 'retrying' || event.type === 'needs-login')
      errors.push(`${event.type}:${event.reason}`);
  });
  return started;
}
say({ type: 'ready', pid: process.pid });

function causeOf(error: Error): string {
  const cause = error.cause as { code?: string; message?: string } | undefined;
  return `${cause?.code ?? ''} ${cause?.message ?? ''}`.trim();
}

async function exit(): Promise<void> {
  // Taken when the bench says the work is done, before closing, which is not refreshing.
  const cpu = process.cpuUsage(cpuAtStart);
  await refresher?.close();
  if (profiler !== undefined && profDir !== undefined) {
    const { profile } = await profiler.post('Profiler.stop');
    writeFileSync(join(profDir, `refresher-${process.pid}.cpuprofile`), JSON.stringify(profile));
  }
  // Counted before the store's own shutdown statements: what the refreshing cost.
  const counted = statements - atStart;
  await store.close();
  say({
    type: 'closed',
    stats: refresher?.stats(),
    statements: counted,
    cpuMs: (cpu.user + cpu.system) / 1000,
    errors: errors.slice(0, 5),
    ...(bySql === undefined ? {} : { bySql: Object.fromEntries(bySql) }),
  });
  process.exit(0);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const { cmd } = JSON.parse(line) as { cmd?: string };
  if (cmd === 'go') refresher ??= go();
  if (cmd === 'exit') void exit();
});
