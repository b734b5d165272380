// Acceptance (issue 4): "Server restarted on the same port: the host sees at most one error,
// and only for a request that was in flight and non-replayable."
//
// The MCP server is NOT behind a fault proxy here: closing it makes connections really
// refused, and the server started on the same port afterwards really knows no session.
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { startMcpServer, type TestMcpServer } from '../harness/index.js';
import { type Host, proxyEnv, type ProxyEnv, text } from '../support/proxy-env.js';

async function pause(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

interface Call {
  readonly started: number;
  ended: number;
  error?: string;
}

/** Run `call` every `everyMs` (one at a time) until `untilMs` passes. */
async function callEvery(
  everyMs: number,
  untilMs: number,
  call: (i: number) => Promise<void>,
): Promise<Call[]> {
  const calls: Call[] = [];
  for (let i = 0; Date.now() < untilMs; i++) {
    const record: Call = { started: Date.now(), ended: 0 };
    calls.push(record);
    try {
      await call(i);
    } catch (error) {
      record.error = error instanceof Error ? error.message : String(error);
    }
    record.ended = Date.now();
    await pause(everyMs);
  }
  return calls;
}

/** A wait that fails with `explain()` after `ms` instead of hanging the file. */
async function withinOrExplain<T>(promise: Promise<T>, ms: number, explain: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(explain())), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A server process that took a request and died before answering: it accepts every
 * connection on the port and holds it; `close()` then drops them all, as the kernel does
 * for a process that exits.
 */
async function dyingServer(
  port: number,
): Promise<{ received(needle: string): Promise<void>; close(): Promise<void> }> {
  let seen = '';
  let waiters: { needle: string; resolve(): void }[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      const arrived = waiters.filter((w) => seen.includes(w.needle));
      waiters = waiters.filter((w) => !arrived.includes(w));
      for (const waiter of arrived) waiter.resolve();
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    received: (needle) =>
      seen.includes(needle) ? Promise.resolve() : new Promise((resolve) => waiters.push({ needle, resolve })),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

describe('latchkey proxy: the server restarts on the same port', () => {
  let env: ProxyEnv;
  let mcp: TestMcpServer;
  let port: number;
  before(async () => {
    env = await proxyEnv();
    mcp = await startMcpServer({ authorizationServer: env.as });
    port = Number(new URL(mcp.directUrl).port);
    await env.seedLogin('local', mcp.url);
  });
  after(async () => {
    await env.close();
    await mcp.close();
  });

  /** Close the server, leave the port refusing for `downMs`, start a fresh one on it. */
  async function restart(downMs = 300): Promise<{ closing: number; closed: number; up: number }> {
    const url = mcp.url;
    const closing = Date.now();
    await mcp.close();
    const closed = Date.now();
    await pause(downMs);
    mcp = await startMcpServer({ authorizationServer: env.as, port });
    assert.equal(mcp.url, url, 'the new server has the same URL');
    return { closing, closed, up: Date.now() };
  }

  async function connectedHost(): Promise<Host> {
    const host = await env.host([], {}, mcp.url);
    await host.client.listTools();
    return host;
  }

  it('echo every 100 ms across a restart: at most one error, only for a call in flight', async () => {
    const host = await connectedHost();
    const started = Date.now();
    const loop = callEvery(100, started + 5000, async (i) => {
      const result = await host.client.callTool({ name: 'echo', arguments: { text: `c${i}` } });
      assert.equal(text(result), `c${i}`);
    });
    await pause(1500);
    const when = await restart();
    const calls = await loop;

    const failed = calls.filter((c) => c.error !== undefined);
    const diag = `${JSON.stringify(failed)}\n${JSON.stringify(mcp.counters.snapshot())}\n${host.stderr()}`;
    assert.ok(failed.length <= 1, `${failed.length} failed calls\n${diag}`);
    for (const call of failed) {
      // Sent to the old server before it was gone, and answered after it started to go.
      assert.ok(call.started < when.closed && call.ended >= when.closing, diag);
      assert.match(call.error ?? '', new RegExp(escape(mcp.url)));
      assert.match(call.error ?? '', /tools\/call was in flight/);
      assert.match(call.error ?? '', /may have run/);
    }
    // Calls made while the port refused connections waited for the new server.
    const duringDowntime = calls.filter((c) => c.started >= when.closed && c.started < when.up);
    assert.ok(duringDowntime.length >= 1, `no call was made while the server was down\n${diag}`);
    assert.ok(
      duringDowntime.every((c) => c.error === undefined && c.ended >= when.up),
      diag,
    );
    const afterRestart = calls.filter((c) => c.started >= when.up);
    assert.ok(afterRestart.length >= 20, `only ${afterRestart.length} calls after the restart`);
    assert.ok(
      afterRestart.every((c) => c.error === undefined),
      diag,
    );
    // The host never re-initialized; the proxy did, on the new server.
    assert.ok(mcp.counters.count('session', 'created') >= 1, diag);
    assert.ok(mcp.counters.count('rpc', 'initialize') >= 1, diag);
    assert.ok(mcp.counters.count('tool', 'echo') >= afterRestart.length, diag);
    assert.match(host.stderr(), /session re-established/);
    await host.close();
  });

  it('tools/list every 100 ms across a restart: no error at all (a list may be sent again)', async () => {
    const host = await connectedHost();
    const started = Date.now();
    const loop = callEvery(100, started + 5000, async () => {
      const tools = await host.client.listTools();
      assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['echo', 'whoami']);
    });
    await pause(1500);
    const when = await restart();
    const calls = await loop;

    const failed = calls.filter((c) => c.error !== undefined);
    const diag = `${JSON.stringify(failed)}\n${JSON.stringify(mcp.counters.snapshot())}\n${host.stderr()}`;
    assert.deepEqual(failed, [], diag);
    assert.ok(calls.filter((c) => c.started >= when.closed && c.started < when.up).length >= 1, diag);
    assert.ok(calls.filter((c) => c.started >= when.up).length >= 20, diag);
    assert.ok(mcp.counters.count('session', 'created') >= 1, diag);
    assert.ok(mcp.counters.count('rpc', 'initialize') >= 1, diag);
    assert.match(host.stderr(), /session re-established/);
    await host.close();
  });

  it('a tools/call the old server took and never answered: one clear error, not sent again', async () => {
    const host = await connectedHost();
    const url = mcp.url;
    await mcp.close();
    const dying = await dyingServer(port);
    const lost = host.client.callTool({ name: 'echo', arguments: { text: 'lost' } }).then(
      () => undefined,
      (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
    );
    await withinOrExplain(
      dying.received('"text":"lost"'),
      20_000,
      () => `the call never reached the dying server\n${host.stderr()}`,
    );
    await dying.close();
    mcp = await startMcpServer({ authorizationServer: env.as, port });

    const error = await lost;
    assert.ok(error !== undefined, `the lost call was answered with a result\n${host.stderr()}`);
    assert.match(error.message, new RegExp(escape(url)));
    assert.match(error.message, /tools\/call was in flight/);
    assert.match(error.message, /may have run/);
    // The lost call never reached the new server, and later calls work on a new session.
    await pause(200);
    assert.equal(mcp.counters.count('rpc', 'tools/call'), 0, `the lost call was replayed\n${host.stderr()}`);
    const result = await host.client.callTool({ name: 'echo', arguments: { text: 'after' } });
    assert.equal(text(result), 'after');
    assert.ok(mcp.counters.count('session', 'created') >= 1);
    assert.match(host.stderr(), /session re-established/);
    await host.close();
  });

  it('a tools/list the old server took and never answered: sent again, the host sees the list', async () => {
    const host = await connectedHost();
    await mcp.close();
    const dying = await dyingServer(port);
    const listed = host.client.listTools();
    await withinOrExplain(
      dying.received('"method":"tools/list"'),
      20_000,
      () => `the list never reached the dying server\n${host.stderr()}`,
    );
    await dying.close();
    mcp = await startMcpServer({ authorizationServer: env.as, port });

    const tools = await listed;
    assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['echo', 'whoami']);
    assert.ok(mcp.counters.count('rpc', 'tools/list') >= 1, 'the list was sent to the new server');
    assert.ok(mcp.counters.count('session', 'created') >= 1);
    await host.close();
  });
});
