/**
 * Issue 14, point 4, in the proxy: a server that floods its listen stream cannot grow the
 * proxy's memory while the host is not reading stdout (backpressure reaches the server), and
 * one message over the size limit is answered with a clear JSON-RPC error instead of being
 * held. Before the fix the flood took the proxy to 1.4 GB in 10 s.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, afterEach, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { type FloodMcpServer, startFloodMcpServer } from '../harness/flood-mcp-server.js';
import { latchkey } from '../support/spawn-cli.js';

const BIN = fileURLToPath(new URL('../../bin/latchkey.cjs', import.meta.url));
/** Generous: the proxy idles near 80 MB; the flood took it to 1.4 GB before the fix. */
const MAX_PEAK_RSS_MB = 400;

interface Message {
  id?: number;
  method?: string;
  result?: { content?: { text?: string }[] };
  error?: { code: number; message: string; data?: { latchkey?: { code?: string } } };
}

/** A host on the proxy's stdio that can stop reading. */
class Host {
  readonly child: ChildProcessWithoutNullStreams;
  readonly answers = new Map<number, Message>();
  notifications = 0;
  junk = 0;
  stderr = '';
  #nextId = 0;

  constructor(args: readonly string[], env: Record<string, string>) {
    this.child = spawn(process.execPath, [BIN, 'proxy', ...args], {
      env: { ...(process.env as Record<string, string>), ...env },
    });
    this.child.stderr.on('data', (c: Buffer) => (this.stderr += c.toString()));
    createInterface({ input: this.child.stdout, crlfDelay: Infinity }).on('line', (line) => {
      let message: Message;
      try {
        message = JSON.parse(line) as Message;
      } catch {
        this.junk++;
        return;
      }
      if (message.method !== undefined) this.notifications++;
      else if (message.id !== undefined) this.answers.set(message.id, message);
    });
  }

  send(method: string, params: Record<string, unknown> = {}, notification = false): number {
    const id = ++this.#nextId;
    const message = notification
      ? { jsonrpc: '2.0', method, params }
      : { jsonrpc: '2.0', id, method, params };
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
    return id;
  }

  async request(method: string, params: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<Message> {
    const id = this.send(method, params);
    const deadline = Date.now() + timeoutMs;
    while (!this.answers.has(id)) {
      if (Date.now() > deadline) throw new Error(`no answer to ${method}; stderr:\n${this.stderr}`);
      await sleep(20);
    }
    return this.answers.get(id) as Message;
  }

  async initialize(): Promise<void> {
    const init = await this.request('initialize', {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 'bounds-test', version: '1' },
    });
    assert.ok(init.result !== undefined, JSON.stringify(init));
    this.send('notifications/initialized', {}, true);
  }

  /** VmHWM of the proxy process, in MB. */
  peakRssMb(): number {
    const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdout.resume();
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('the proxy reads no faster than the host, and no message beyond the limit', () => {
  let server: FloodMcpServer;
  let home: string;
  let env: Record<string, string>;
  let host: Host | undefined;
  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'latchkey-backpressure-'));
    env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
  });
  afterEach(async () => {
    await host?.close();
    host = undefined;
    await server.close();
  });
  after(async () => {
    await rm(home, { recursive: true, force: true });
  });

  const staticAuth = ['--header', 'Authorization: Bearer static-test-token'];

  for (const transport of ['streamable-http', 'sse'] as const) {
    it(`${transport}: an endless SSE flood with a host that does not read: the proxy stops reading, peak RSS under ${MAX_PEAK_RSS_MB} MB`, async () => {
      server = await startFloodMcpServer();
      const url = transport === 'sse' ? server.legacyUrl : server.url;
      host = new Host([url, ...staticAuth, '--transport', transport], env);
      await host.initialize();
      // The host stops reading: the flood now has nowhere to go but the proxy's memory.
      host.child.stdout.pause();
      let peak = 0;
      for (let i = 0; i < 24; i++) {
        await sleep(250);
        peak = Math.max(peak, host.peakRssMb());
      }
      const sentWhilePaused = server.sentBytes;
      console.log(
        `${transport} flood, host not reading for 6 s: peak RSS ${peak.toFixed(0)} MB, server sent ${sentWhilePaused} bytes`,
      );
      assert.ok(peak < MAX_PEAK_RSS_MB, `peak RSS ${peak.toFixed(0)} MB`);
      // Not a pass by accident: the flood really ran while the host was not reading.
      assert.ok(sentWhilePaused > 1024 * 1024, `the server sent only ${sentWhilePaused} bytes`);
      // Socket and pipe buffers hold a few MB; without backpressure the server sends ~100 MB/s.
      assert.ok(sentWhilePaused < 64 * 1024 * 1024, `the server sent ${sentWhilePaused} bytes`);
      // The host reads again: the same stream flows again (it was paused, not dropped).
      const before = host.notifications;
      host.child.stdout.resume();
      const deadline = Date.now() + 30_000;
      while (host.notifications < before + 10_000 && Date.now() < deadline) await sleep(50);
      assert.ok(
        host.notifications >= before + 10_000,
        `only ${host.notifications - before} notifications after resuming`,
      );
      assert.ok(server.sentBytes > sentWhilePaused, 'the server could send again');
      assert.equal(server.listens, 1, 'one stream throughout');
      assert.equal(host.junk, 0, 'stdout carried JSON-RPC messages only');
    });
  }

  for (const as of ['sse', 'json'] as const) {
    it(`an answer over --max-message-size (${as}) gets a clear JSON-RPC error; the proxy keeps serving`, async () => {
      server = await startFloodMcpServer();
      host = new Host([server.url, ...staticAuth, '--max-message-size', '1'], env);
      await host.initialize();
      const big = await host.request('tools/call', {
        name: 'big',
        arguments: { bytes: 3 * 1024 * 1024, as },
      });
      assert.equal(big.error?.code, -32043, JSON.stringify(big).slice(0, 500));
      assert.equal(big.error?.data?.latchkey?.code, 'MESSAGE_TOO_LARGE');
      assert.match(
        big.error?.message ?? '',
        /answer to tools\/call was larger than the 1048576-byte message size limit/,
      );
      assert.match(big.error?.message ?? '', /--max-message-size/);
      const small = await host.request('tools/call', { name: 'big', arguments: { bytes: 1000, as } });
      assert.equal(small.result?.content?.[0]?.text?.length, 1000);
    });
  }

  it('latchkey call: a JSON answer over 32 MiB is refused with RESPONSE_TOO_LARGE, not buffered', async () => {
    server = await startFloodMcpServer();
    const run = await latchkey(
      ['call', server.url, 'big', JSON.stringify({ bytes: 40 * 1024 * 1024, as: 'json' }), ...staticAuth],
      env,
    );
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.stdout, '');
    assert.match(
      run.stderr,
      /the MCP server response from 127\.0\.0\.1:\d+ went on past the 33554432-byte limit/,
    );
  });

  it('a 20 MB tool result passes under the default limit (big results are legitimate)', async () => {
    server = await startFloodMcpServer();
    host = new Host([server.url, ...staticAuth], env);
    await host.initialize();
    const bytes = 20 * 1024 * 1024;
    const big = await host.request('tools/call', { name: 'big', arguments: { bytes, as: 'sse' } });
    assert.equal(big.error, undefined, JSON.stringify(big.error));
    assert.equal(big.result?.content?.[0]?.text?.length, bytes);
  });
});
