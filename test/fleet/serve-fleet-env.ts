// Issue 17's fleet: `latchkey serve` instances as separate OS processes (the built command,
// as an operator runs it) on one PostgreSQL database, a round-robin front door standing in
// for the load balancer, users connected through the web flow, and MCP hosts (the SDK's
// Client over Streamable HTTP) calling tools through random instances.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { completeAuthorization } from '../harness/index.js';

const BIN = fileURLToPath(new URL('../../bin/latchkey.cjs', import.meta.url));

/** One `latchkey serve` process. */
export interface ServeProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly stderr: string[];
  alive: boolean;
  readonly exited: Promise<number | null>;
  /** SIGTERM and wait: requests and refreshes in flight finish, leases are released. */
  stop(): Promise<number | null>;
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function spawnServe(options: {
  storeUrl: string;
  upstream: string;
  publicUrl: string;
  env: Record<string, string>;
  extraArgs?: readonly string[];
}): Promise<ServeProcess> {
  const port = await freePort();
  const args = [BIN, '--store', options.storeUrl, 'serve', '--upstream', `demo=${options.upstream}`];
  args.push('--listen', `127.0.0.1:${port}`, '--public-url', options.publicUrl, ...(options.extraArgs ?? []));
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...options.env, LATCHKEY_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderr.push(line);
      if (line.includes('listening on')) resolve();
    });
    void exited.then((code) => reject(new Error(`serve exited ${code}:\n${stderr.join('\n')}`)));
  });
  await listening;
  const proc: ServeProcess = {
    child,
    url: `http://127.0.0.1:${port}`,
    stderr,
    alive: true,
    exited,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
  void exited.then(() => (proc.alive = false));
  return proc;
}

/**
 * The load balancer in front of the instances: each request goes to a random live one. It is
 * the public URL, so a callback reaches whichever instance it picks, not the one that
 * started the connect attempt.
 */
export async function startFrontDoor(
  instances: () => readonly ServeProcess[],
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const live = instances().filter((i) => i.alive);
    const target = new URL(pick(live).url);
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function pick<T>(items: readonly T[]): T {
  const item = items[Math.floor(Math.random() * items.length)];
  assert.ok(item !== undefined, 'nothing to pick from');
  return item;
}

/**
 * The connect flow as an application runs it: POST the connection at one instance, the
 * user's browser (the harness's HTTP login driver) signs in at the AS as `asUser`, and the
 * AS sends it back to the public callback.
 */
export async function connectByWeb(
  instance: ServeProcess,
  key: string,
  subject: string,
  asUser: string,
): Promise<void> {
  const started = await fetch(`${instance.url}/v1/subjects/${subject}/connections/demo`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ return_to: 'https://app.example.com/connected' }),
  });
  assert.equal(started.status, 201, await started.clone().text());
  const { authorization_url } = (await started.json()) as { authorization_url: string };
  const callback = await completeAuthorization(authorization_url, { subject: asUser });
  const landed = await fetch(callback, { redirect: 'manual' });
  assert.equal(landed.status, 303);
  const back = new URL(landed.headers.get('location') ?? '');
  assert.equal(back.searchParams.get('latchkey_status'), 'connected', back.href);
}

/** Run `task` over `items`, `parallel` at a time. */
export async function forEachParallel<T>(
  items: readonly T[],
  parallel: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) await task(items[i] as T);
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

export interface CallRecord {
  subject: string;
  instance: number;
  at: number;
  ms: number;
  error?: string;
}

/**
 * MCP hosts: one SDK Client per (instance, user), made on first use, as a host that keeps
 * its session. Each worker calls `whoami` for a random user through a random allowed
 * instance and checks that the answer is that user's own account at the AS.
 */
export class Hosts {
  readonly calls: CallRecord[] = [];
  readonly #clients = new Map<string, Promise<Client>>();
  #stopped = false;
  #running: Promise<void> = Promise.resolve();

  constructor(
    private readonly instances: readonly ServeProcess[],
    private readonly key: string,
    private readonly accountOf: (subject: string) => string,
  ) {}

  start(subjects: readonly string[], allowed: readonly number[], workers: number): void {
    this.#stopped = false;
    const loop = async (): Promise<void> => {
      while (!this.#stopped) await this.#call(pick(subjects), pick(allowed));
    };
    this.#running = Promise.all(Array.from({ length: workers }, loop)).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#running;
  }

  get clientCount(): number {
    return this.#clients.size;
  }

  async close(): Promise<void> {
    for (const client of this.#clients.values()) await (await client.catch(() => undefined))?.close();
  }

  async #call(subject: string, instance: number): Promise<void> {
    const at = Date.now();
    try {
      const client = await this.#client(subject, instance);
      const started = performance.now();
      const result = await client.callTool({ name: 'whoami' });
      const ms = performance.now() - started;
      const text = (result.content as { text?: string }[]).map((c) => c.text ?? '').join('');
      if (text !== this.accountOf(subject)) throw new Error(`whoami answered ${text}`);
      this.calls.push({ subject, instance, at, ms });
    } catch (error) {
      this.calls.push({ subject, instance, at, ms: 0, error: (error as Error).message });
    }
  }

  #client(subject: string, instance: number): Promise<Client> {
    const id = `${instance}:${subject}`;
    let client = this.#clients.get(id);
    if (client === undefined) {
      const base = this.instances[instance]?.url ?? '';
      const url = new URL(`${base}/v1/subjects/${subject}/mcp/demo`);
      const made = new Client({ name: 'fleet-host', version: '1' }, { capabilities: {} });
      const headers = { authorization: `Bearer ${this.key}` };
      client = made
        .connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }))
        .then(() => made);
      // A failed handshake is that call's failure; the next call tries a new client.
      client.catch(() => this.#clients.delete(id));
      this.#clients.set(id, client);
    }
    return client;
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}
