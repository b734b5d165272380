// `npm run bench serve` (issue 17): the token API on a cache hit at a fixed offered load, and
// the memory of one instance per 10k connected users. Measurements, not tests: nothing here
// fails on a slow machine. The service runs in a child on dist/ (bench/serve-child.mjs), the
// load generator here, both on the same (shared) cores.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./serve-child.mjs', import.meta.url));

interface Instance {
  child: ChildProcess;
  url: string;
  key: string;
  home: string;
  exited: Promise<void>;
}

/** Run the child in `mode`; resolves with the first JSON line it prints, and the process. */
function child(
  mode: string[],
  env: NodeJS.ProcessEnv,
): { proc: ChildProcess; line: Promise<Record<string, string>>; exited: Promise<void> } {
  const proc = spawn(process.execPath, [CHILD, ...mode], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const line = new Promise<Record<string, string>>((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const cut = out.indexOf('\n');
      if (cut >= 0) resolve(JSON.parse(out.slice(0, cut)) as Record<string, string>);
    });
    proc.on('exit', (code) => reject(new Error(`bench child ${mode[0]} exited ${code} before its report`)));
  });
  return { proc, line, exited };
}

/** Seed `users` in a process of their own, then start the service in a fresh one on that store. */
async function startInstance(users: number): Promise<Instance> {
  const home = await mkdtemp(join(tmpdir(), 'latchkey-bench-serve-'));
  const env = { ...process.env, LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
  const seeding = child(['seed', String(users)], env);
  const { key } = await seeding.line;
  await seeding.exited;
  const serving = child(['serve'], env);
  const { url } = await serving.line;
  return { child: serving.proc, url: url ?? '', key: key ?? '', home, exited: serving.exited };
}

async function stopInstance(instance: Instance): Promise<void> {
  instance.child.kill('SIGTERM');
  await instance.exited;
  await rm(instance.home, { recursive: true, force: true });
}

/** Resident and peak resident set of a process, MB (Linux /proc). */
function rssMb(pid: number | undefined): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number =>
    Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rss: Math.round(field('VmRSS') / 1024), peak: Math.round(field('VmHWM') / 1024) };
}

/** CPU time a process has used, ms (Linux /proc; clock ticks of 10 ms). */
function cpuMs(pid: number | undefined): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** One GET on a keep-alive agent; resolves with the status once the body is read. */
function get(agent: Agent, url: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { authorization: `Bearer ${key}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

function tokenUrl(instance: Instance, n: number): string {
  return `${instance.url}/v1/subjects/user-${n}/connections/demo/token`;
}

interface LoadResult {
  offered: number;
  achieved: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

/**
 * An open-loop load: request i is sent at start + i/rate whatever earlier ones are doing, and
 * its latency counts from that scheduled moment, so a stall shows in the percentiles instead
 * of silently lowering the offered rate (coordinated omission).
 */
async function offeredLoad(
  instance: Instance,
  users: number,
  rate: number,
  seconds: number,
): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const total = rate * seconds;
  const latencies = new Float64Array(total);
  let errors = 0;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    // A request sent up to 1 ms early counts from when it was sent, one sent late from when it
    // was due; counting an early one from its due moment gave negative latencies.
    const from = Math.min(due, performance.now());
    pending.push(
      get(agent, tokenUrl(instance, i % users), instance.key).then(
        (status) => {
          if (status !== 200) errors++;
          latencies[i] = performance.now() - from;
        },
        () => {
          errors++;
          latencies[i] = performance.now() - from;
        },
      ),
    );
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort();
  const pct = (p: number): number => round(latencies[Math.min(total - 1, Math.floor(total * p))] ?? NaN);
  return {
    offered: rate,
    achieved: Math.round(total / elapsed),
    errors,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    p999Ms: pct(0.999),
    maxMs: round(latencies[total - 1] ?? NaN),
  };
}

/** Every user's connections and token once, a few at a time: the service has now served them all. */
async function serveEveryone(instance: Instance, users: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  let failures = 0;
  for (let n = 0; n < users; n += 16) {
    const batch = [];
    for (let m = n; m < Math.min(users, n + 16); m++) {
      batch.push(get(agent, `${instance.url}/v1/subjects/user-${m}/connections`, instance.key));
      batch.push(get(agent, tokenUrl(instance, m), instance.key));
    }
    failures += (await Promise.all(batch)).filter((s) => s !== 200).length;
  }
  agent.destroy();
  return failures;
}

export async function benchServeTokens(): Promise<Record<string, string | number>> {
  const users = 1_000;
  const instance = await startInstance(users);
  try {
    await serveEveryone(instance, users); // every token is now in the cache
    await offeredLoad(instance, users, 2_000, 2); // warm-up: JIT, sockets
    const cpuBefore = cpuMs(instance.child.pid);
    const r = await offeredLoad(instance, users, 2_000, 10);
    const cpuPerRequestUs = ((cpuMs(instance.child.pid) - cpuBefore) * 1000) / (r.offered * 10);
    return {
      'offered load (req/s), 10 s, 1,000 users': r.offered,
      'achieved (req/s)': r.achieved,
      'errors (non-200 or failed)': r.errors,
      'latency p50 / p99 / p99.9 / max (ms)   goal p99 < 5': `${r.p50Ms} / ${r.p99Ms} / ${r.p999Ms} / ${r.maxMs}`,
      // Independent of contention: what one answer costs the service.
      'service CPU per request (us)': Math.round(cpuPerRequestUs),
      // Load generator and service share the cores with whatever else runs: say how busy they were.
      'load average (1 min) at the end': loadavg()[0]?.toFixed(2) ?? 'unknown',
    };
  } finally {
    await stopInstance(instance);
  }
}

export async function benchServeMemory(): Promise<Record<string, string | number>> {
  const figures: Record<string, string | number> = {};
  const baseline: Record<number, number> = {};
  for (const users of [0, 10_000]) {
    const instance = await startInstance(users);
    try {
      const idle = rssMb(instance.child.pid);
      const failures = await serveEveryone(instance, users);
      const served = rssMb(instance.child.pid);
      baseline[users] = served.rss;
      figures[`${users / 1000}k users: RSS MB idle / after serving all / peak`] =
        `${idle.rss} / ${served.rss} / ${served.peak}`;
      if (users > 0) figures[`${users / 1000}k users: failed requests`] = failures;
    } finally {
      await stopInstance(instance);
    }
  }
  figures['RSS per 10k connected users (MB, over an empty instance)'] =
    (baseline[10_000] ?? NaN) - (baseline[0] ?? NaN);
  return figures;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
