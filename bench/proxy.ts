// `npm run bench proxy`: `latchkey proxy <url>` (the built binary, as a host config runs it)
// against mcp-remote (installed at bench time, see proxy-peer.ts) in the same run, same
// harness AS and MCP server, same SDK Client host on stdio:
//   - warm start: spawn to the first successful tools/call with a stored valid credential;
//   - tools/call round trips, sequential, through each proxy and with the SDK client direct;
//   - a 3-s access-token TTL under a call every 200 ms, and the server dropping every session.
// Browser launches are counted by a BROWSER script that records the URL and exits: nothing
// real opens.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import {
  completeAuthorization,
  startAuthorizationServer,
  startMcpServer,
  type AuthorizationServerOptions,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../test/harness/index.js';
import { CredentialManager } from '../src/lifecycle/manager.js';
import { createLoginHook } from '../src/login/login.js';
import { silentLogger } from '../src/log.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { obtainTokens } from '../test/harness/obtain-tokens.js';
import { ensurePeer, PEER_PACKAGE, seedPeerCredential } from './proxy-peer.js';

const LATCHKEY_BIN = fileURLToPath(new URL('../bin/latchkey.cjs', import.meta.url));
const CALL_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 20_000;

type Figures = Record<string, unknown>;
export type Section = [title: string, figures: Figures];

export interface ProxyBenchOptions {
  warmRuns?: number;
  throughputMs?: number;
  expiryMs?: number;
  dropMs?: number;
  /** Warm start and throughput only (`npm run bench proxy -- --quick`). */
  quick?: boolean;
  /**
   * `--dpop`: the AS and MCP server speak DPoP and latchkey's credential comes from a real
   * login, so every proxied request carries a proof (docs/dpop.md); the direct client and
   * mcp-remote keep bearer tokens, so the latchkey/direct figures include the proof's cost.
   */
  dpop?: boolean;
}

type Product = 'latchkey' | 'mcp-remote';

export async function benchProxy(options: ProxyBenchOptions = {}): Promise<Section[]> {
  const warmRuns = options.warmRuns ?? 5;
  const throughputMs = options.throughputMs ?? 3000;
  const expiryMs = options.expiryMs ?? 15_000;
  const dropMs = options.dropMs ?? 6000;

  const sections: Section[] = [];
  const peer = await ensurePeer();
  const peerBin = peer.ok ? peer.bin : undefined;
  sections.push([
    'peer',
    peer.ok
      ? { [PEER_PACKAGE]: `${peer.version} (.cache/peers, npm install --no-save)` }
      : { unavailable: peer.reason },
  ]);
  if (!peer.ok) console.log(`\npeer unavailable: ${peer.reason}`);

  // Warm start and throughput share one env with long-lived tokens.
  const env = await benchEnv({ accessTokenTtl: 3600 }, options.dpop === true);
  const targets: Figures = {};
  try {
    const lk = await env.product('latchkey');
    const mr = peerBin === undefined ? undefined : await env.product('mcp-remote', peerBin);

    // Warm start: interleaved, one unmeasured run each first (disk cache, JIT of npm's files).
    const warm: Record<Product, number[]> = { latchkey: [], 'mcp-remote': [] };
    const handshake: Record<Product, number[]> = { latchkey: [], 'mcp-remote': [] };
    for (let i = -1; i < warmRuns; i++) {
      for (const p of [lk, mr]) {
        if (p === undefined) continue;
        const ms = await warmStart(p);
        if (i < 0) continue;
        warm[p.name].push(ms.total);
        handshake[p.name].push(ms.handshake);
      }
    }
    const boot = await nodeBoot(warmRuns);
    const warmFigures: Figures = {
      runs: warmRuns,
      'node -e 0 median ms': round(boot),
      latchkeyMedianMs: `${round(median(warm.latchkey))}  (handshake done at ${round(median(handshake.latchkey))})`,
    };
    if (mr !== undefined) {
      warmFigures['mcpRemoteMedianMs'] =
        `${round(median(warm['mcp-remote']))}  (handshake done at ${round(median(handshake['mcp-remote']))})`;
      warmFigures['ratio (mcp-remote/latchkey)'] =
        `${(median(warm['mcp-remote']) / median(warm.latchkey)).toFixed(2)}x   goal >= 2x`;
    }
    sections.push([
      'proxy warm start: spawn to first successful tools/call, stored valid credential (median)',
      warmFigures,
    ]);

    targets['warm start, latchkey / node -e 0'] =
      `${(median(warm.latchkey) / boot).toFixed(2)}x   target <= 2x`;
    if (mr !== undefined)
      targets['warm start, latchkey / mcp-remote'] =
        `${(median(warm.latchkey) / median(warm['mcp-remote'])).toFixed(2)}x`;

    // Round trips.
    const rounds = await roundTrips(
      [
        await directClient(env.mcp.url, await env.freshAccessToken()),
        await lk.host(),
        ...(mr === undefined ? [] : [await mr.host()]),
      ],
      throughputMs,
    );
    const [direct, viaLk, viaMr] = rounds as [Throughput, Throughput, Throughput | undefined];
    const tp: Figures = {
      direct: describe(direct),
      latchkey: describe(viaLk),
    };
    if (viaMr !== undefined) tp['mcp-remote'] = describe(viaMr);
    tp['latchkey/direct throughput'] = `${(viaLk.perSecond / direct.perSecond).toFixed(2)}   goal >= 0.95`;
    targets['tools/call throughput, latchkey / direct SDK client'] =
      `${(viaLk.perSecond / direct.perSecond).toFixed(2)}x   target >= 0.95x`;
    if (viaMr !== undefined)
      targets['tools/call throughput, latchkey / mcp-remote'] =
        `${(viaLk.perSecond / viaMr.perSecond).toFixed(2)}x`;
    tp['latchkey p50 overhead'] = `${(viaLk.p50 - direct.p50).toFixed(2)} ms   goal < 1 ms`;
    if (viaMr !== undefined) {
      tp['mcp-remote/direct throughput'] = (viaMr.perSecond / direct.perSecond).toFixed(2);
      tp['mcp-remote p50 overhead'] = `${(viaMr.p50 - direct.p50).toFixed(2)} ms`;
      tp['latchkey/mcp-remote throughput'] = `${(viaLk.perSecond / viaMr.perSecond).toFixed(2)}x`;
    }
    sections.push([
      `tools/call round trips, sequential, ${throughputMs / 1000} s each after warm-up (6 interleaved rounds)${options.dpop === true ? ', latchkey with DPoP proofs' : ''}`,
      tp,
    ]);
    // The two figures issue 15 sets targets for, side by side, from this one run.
    sections.push([
      'issue 15 targets, this run (warm start and throughput from the sections above)',
      targets,
    ]);
  } finally {
    await env.close();
  }
  if (options.quick === true) return sections;

  // Expiry and session drop: a fresh env per product, products side by side.
  const products: Product[] = peerBin === undefined ? ['latchkey'] : ['latchkey', 'mcp-remote'];
  const expiry = await Promise.all(products.map((name) => expiryScenario(name, peerBin, expiryMs)));
  for (const [i, name] of products.entries()) {
    sections.push([
      `access-token TTL 3 s, a call every 200 ms for ${expiryMs / 1000} s: ${name}`,
      expiry[i] ?? {},
    ]);
  }
  const drops = await Promise.all(products.map((name) => dropScenario(name, peerBin, dropMs)));
  for (const [i, name] of products.entries()) {
    sections.push([
      `server drops every session every 1.5 s, a call every 100 ms for ${dropMs / 1000} s: ${name}`,
      drops[i] ?? {},
    ]);
  }
  return sections;
}

// ---------------------------------------------------------------------------------------------

interface BenchEnv {
  as: TestAuthorizationServer;
  mcp: TestMcpServer;
  product(name: Product, peerBin?: string): Promise<ProductRun>;
  freshAccessToken(): Promise<string>;
  close(): Promise<void>;
}

interface ProductRun {
  name: Product;
  /** Spawn the proxy and connect a host to it. */
  host(): Promise<Host>;
  /** Browser launches so far. */
  browserLaunches(): Promise<number>;
}

interface Host {
  client: Client;
  stderr(): string;
  close(): Promise<void>;
}

async function benchEnv(options: Partial<AuthorizationServerOptions>, dpop = false): Promise<BenchEnv> {
  const as = await startAuthorizationServer({ ...options, dpop });
  const mcp = await startMcpServer({ authorizationServer: as, dpop });
  const dirs: string[] = [];
  const hosts: Host[] = [];
  let subjects = 0;
  const tokens = (subject: string) => obtainTokens(as, { resource: mcp.url, subject });
  return {
    as,
    mcp,
    async freshAccessToken() {
      return (await tokens(`direct-${subjects++}`)).response.access_token;
    },
    async product(name, peerBin) {
      const dir = await mkdtemp(join(tmpdir(), `latchkey-bench-${name}-`));
      dirs.push(dir);
      const launches = join(dir, 'browser-launches');
      const browser = join(dir, 'browser.sh');
      await writeFile(launches, '');
      await writeFile(browser, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${launches}'\nexit 0\n`);
      await chmod(browser, 0o755);
      const childEnv = quietEnv({ HOME: dir, BROWSER: browser });
      const issued = await tokens(`${name}-user`);
      let command: string[];
      if (name === 'latchkey') {
        const home = join(dir, 'latchkey');
        Object.assign(childEnv, { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') });
        // LATCHKEY_BENCH_HTTP_CLIENT=fetch: measure the proxy on Node's fetch (docs/configuration.md).
        const httpClient = process.env['LATCHKEY_BENCH_HTTP_CLIENT'];
        if (httpClient !== undefined) childEnv['LATCHKEY_HTTP_CLIENT'] = httpClient;
        const store = await openSqliteStore({ home, env: childEnv });
        const openBrowser = async (url: string): Promise<void> => {
          await fetch(await completeAuthorization(url, { subject: `${name}-user` }));
        };
        const manager = new CredentialManager({
          store,
          logger: silentLogger,
          watch: false,
          proactiveRefresh: false,
          // With DPoP, a real login binds the token to the store's key, as a user's would.
          ...(dpop
            ? { acquire: createLoginHook({ store, flow: 'browser', openBrowser, notify: () => undefined }) }
            : {}),
        });
        if (dpop) await manager.getToken(mcp.url);
        else
          await manager.saveAcquired(mcp.url, {
            issuer: issued.issuer,
            clientId: issued.clientId,
            requestedAt: issued.requestedAt,
            response: issued.response,
          });
        manager.close();
        await store.close();
        // LATCHKEY_BENCH_CPU_PROF=<dir>: a V8 CPU profile of every latchkey proxy the bench runs.
        const profileDir = process.env['LATCHKEY_BENCH_CPU_PROF'];
        command = [
          ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
          LATCHKEY_BIN,
          'proxy',
          mcp.url,
        ];
      } else {
        if (peerBin === undefined) throw new Error('no peer');
        const configDir = join(dir, 'mcp-auth');
        childEnv['MCP_REMOTE_CONFIG_DIR'] = configDir;
        await seedPeerCredential(configDir, {
          serverUrl: mcp.url,
          issuer: issued.issuer,
          clientId: issued.clientId,
          requestedAt: issued.requestedAt,
          response: issued.response,
        });
        command = [peerBin, mcp.url, '--allow-http'];
      }
      return {
        name,
        async host() {
          const host = await spawnHost(command, childEnv);
          hosts.push(host);
          return host;
        },
        async browserLaunches() {
          return (await readFile(launches, 'utf8')).split('\n').filter(Boolean).length;
        },
      };
    },
    async close() {
      await Promise.all(hosts.map((h) => h.close().catch(() => undefined)));
      await mcp.close();
      await as.close();
      for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The environment minus anything that would make a browser opener find a real desktop. */
function quietEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (
      /^(DISPLAY|WAYLAND_DISPLAY|XDG_CURRENT_DESKTOP|XDG_SESSION_DESKTOP|DESKTOP_SESSION|KDE_.*|GNOME_.*)$/.test(
        k,
      )
    )
      continue;
    if (/^LATCHKEY_/.test(k) || k === 'MCP_REMOTE_CONFIG_DIR') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

async function spawnHost(command: string[], env: Record<string, string>): Promise<Host> {
  const [script, ...args] = command;
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [script ?? '', ...args],
    env,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  const client = new Client({ name: 'bench-host', version: '1.0.0' });
  await withTimeout(
    client.connect(transport, { timeout: CONNECT_TIMEOUT_MS }),
    CONNECT_TIMEOUT_MS,
    'connect',
  );
  let closed = false;
  return {
    client,
    stderr: () => stderr,
    async close() {
      if (closed) return;
      closed = true;
      await client.close();
    },
  };
}

async function directClient(url: string, token: string): Promise<Host> {
  const client = new Client({ name: 'bench-direct', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    }),
  );
  return { client, stderr: () => '', close: () => client.close() };
}

async function call(host: Host, text: string): Promise<void> {
  const result = await host.client.callTool({ name: 'echo', arguments: { text } }, undefined, {
    timeout: CALL_TIMEOUT_MS,
  });
  const content = (result as { content?: { text?: string }[]; isError?: boolean }).content ?? [];
  const got = content.map((c) => c.text ?? '').join('');
  if ((result as { isError?: boolean }).isError === true || got !== text)
    throw new Error(`bad answer: ${JSON.stringify(result).slice(0, 200)}`);
}

/** Spawn to the first tools/call answered, and spawn to the end of the MCP handshake. */
async function warmStart(product: ProductRun): Promise<{ total: number; handshake: number }> {
  const started = performance.now();
  const host = await product.host();
  const handshake = performance.now() - started;
  try {
    await call(host, 'warm');
    return { total: performance.now() - started, handshake };
  } catch (error) {
    throw new Error(`${product.name} warm start failed: ${String(error)}\n${host.stderr().slice(-2000)}`, {
      cause: error,
    });
  } finally {
    await host.close();
  }
}

/** `node -e 0`, spawn to exit: the floor under either proxy's warm start. */
async function nodeBoot(runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await promisify(execFile)(process.execPath, ['-e', '0']);
    times.push(performance.now() - started);
  }
  return median(times);
}

interface Throughput {
  calls: number;
  perSecond: number;
  p50: number;
  p99: number;
}

/**
 * Sequential calls through each host for `ms` in all, after 300 warm-up calls each: six
 * rounds of ms/3 per host, interleaved, so drift (GC, JIT, the other processes on the machine)
 * falls on all of them alike.
 */
async function roundTrips(hosts: Host[], ms: number, rounds = 6): Promise<Throughput[]> {
  try {
    for (const host of hosts) for (let i = 0; i < 300; i++) await call(host, `w${i}`);
    const latencies = hosts.map((): number[] => []);
    const elapsed = hosts.map(() => 0);
    for (let round = 0; round < rounds; round++) {
      for (const [h, host] of hosts.entries()) {
        const started = performance.now();
        const deadline = started + ms / rounds;
        let i = 0;
        while (performance.now() < deadline) {
          const t = performance.now();
          await call(host, `c${i++}`);
          latencies[h]?.push(performance.now() - t);
        }
        elapsed[h] = (elapsed[h] ?? 0) + performance.now() - started;
      }
    }
    return latencies.map((l, h) => {
      l.sort((a, b) => a - b);
      return {
        calls: l.length,
        perSecond: l.length / ((elapsed[h] ?? NaN) / 1000),
        p50: percentile(l, 0.5),
        p99: percentile(l, 0.99),
      };
    });
  } finally {
    await Promise.all(hosts.map((h) => h.close().catch(() => undefined)));
  }
}

function describe(t: Throughput): string {
  return `${Math.round(t.perSecond)} calls/s  p50 ${t.p50.toFixed(2)} ms  p99 ${t.p99.toFixed(2)} ms  (${t.calls} calls)`;
}

async function expiryScenario(name: Product, peerBin: string | undefined, ms: number): Promise<Figures> {
  const env = await benchEnv({ accessTokenTtl: 3 });
  try {
    const product = await env.product(name, peerBin);
    env.as.counters.reset();
    env.mcp.counters.reset();
    const host = await product.host();
    const { calls, failed, firstError } = await callEvery(host, 200, ms);
    const c = env.as.counters;
    return {
      calls,
      failedCalls: failed,
      browserLaunches: await product.browserLaunches(),
      refreshRequests: `${c.count('refresh_token')} (ok ${c.count('refresh_token', 'ok')}, invalid_grant ${c.count('refresh_token', 'invalid_grant')})`,
      authorizationCodeGrants: c.count('authorization_code'),
      rejectedAtServer: env.mcp.counters.count('auth', 'invalid_token'),
      ...(firstError === undefined ? {} : { firstError }),
      ...(name === 'mcp-remote'
        ? {
            note: 'mcp-remote refreshes before any request within 60 s of expiry and stops after 20 token writes in 30 s',
          }
        : {}),
    };
  } finally {
    await env.close();
  }
}

async function dropScenario(name: Product, peerBin: string | undefined, ms: number): Promise<Figures> {
  const env = await benchEnv({ accessTokenTtl: 3600 });
  try {
    const product = await env.product(name, peerBin);
    const host = await product.host();
    const created = env.mcp.counters.count('session', 'created');
    let drops = 0;
    let droppedAt: number | undefined;
    const recoveries: number[] = [];
    let nextDrop = Date.now() + 1000;
    const { calls, failed, firstError } = await callEvery(host, 100, ms, async (ok) => {
      if (ok && droppedAt !== undefined) {
        recoveries.push(Date.now() - droppedAt);
        droppedAt = undefined;
      }
      if (Date.now() >= nextDrop) {
        await env.mcp.dropAllSessions();
        drops++;
        droppedAt = Date.now();
        nextDrop += 1500;
      }
    });
    return {
      calls,
      drops,
      failedCalls: failed,
      callsRecovered: `${recoveries.length} of ${drops} drops, max ${recoveries.length === 0 ? '-' : Math.max(...recoveries)} ms`,
      sessionsCreated: env.mcp.counters.count('session', 'created') - created,
      browserLaunches: await product.browserLaunches(),
      ...(firstError === undefined ? {} : { firstError }),
    };
  } finally {
    await env.close();
  }
}

/** A call every `period` ms for `ms`; `between` runs after each call with its outcome. */
async function callEvery(
  host: Host,
  period: number,
  ms: number,
  between?: (ok: boolean) => Promise<void>,
): Promise<{ calls: number; failed: number; firstError?: string }> {
  let calls = 0;
  let failed = 0;
  let firstError: string | undefined;
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const started = Date.now();
    let ok = true;
    try {
      await call(host, `n${calls}`);
    } catch (error) {
      ok = false;
      failed++;
      firstError ??= String(error).split('\n')[0]?.slice(0, 160);
    }
    calls++;
    await between?.(ok);
    await new Promise((r) => setTimeout(r, Math.max(0, period - (Date.now() - started))));
  }
  return { calls, failed, ...(firstError === undefined ? {} : { firstError }) };
}

// ---------------------------------------------------------------------------------------------

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
