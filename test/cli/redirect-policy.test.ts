import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { ExitCode } from '../../src/cli/exit-codes.js';
import {
  type FaultProxy,
  startFaultProxy,
  startLegacySseMcpServer,
  type TestLegacySseMcpServer,
} from '../harness/index.js';
import { proxyEnv, type ProxyEnv } from '../support/proxy-env.js';
import { spawnRawHost } from '../support/raw-host.js';
import { latchkey } from '../support/spawn-cli.js';

/** Another origin that keeps whatever reaches it, and answers like an open MCP server would not. */
interface Recorder {
  origin: string;
  seen: Array<{ method: string; path: string; headers: IncomingHttpHeaders }>;
  close(): Promise<void>;
}

async function startRecorder(): Promise<Recorder> {
  const seen: Recorder['seen'] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    req.resume();
    res.writeHead(404).end('recorded');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const TENANT = 'tenant-secret-4711';

/**
 * Issue 14, point 8: one redirect policy for every MCP request. A server that answers 307 to
 * another origin is refused on `tools`, `call` and in the proxy, with an error naming the
 * server; nothing (no bearer, no --header value, no request at all) reaches that origin.
 */
describe('cross-origin redirects are refused on every command and the proxy', () => {
  let env: ProxyEnv;
  let recorder: Recorder;
  before(async () => {
    env = await proxyEnv({ accessTokenTtl: 300 });
    recorder = await startRecorder();
    await env.seedLogin('redirect-user');
  });
  after(async () => {
    await recorder.close();
    await env.close();
  });

  function redirectAway() {
    return env.mcpProxy.inject({
      path: new URL(env.url).pathname,
      action: { type: 'status', status: 307, headers: { location: `${recorder.origin}/mcp` } },
    });
  }

  const args = {
    tools: (): string[] => ['tools', env.url],
    call: (): string[] => ['call', env.url, 'echo', '{"text":"hi"}'],
  };
  for (const command of ['tools', 'call'] as const) {
    it(`${command}: refused with an error naming the server; nothing reaches the other origin`, async () => {
      const fault = redirectAway();
      try {
        const run = await latchkey([...args[command](), '--header', 'X-Tenant: ${LK_TENANT}'], {
          ...env.env,
          LK_TENANT: TENANT,
        });
        assert.equal(run.code, ExitCode.ERROR, run.stderr);
        assert.ok(fault.hits >= 1, 'the server answered with the redirect');
        assert.match(
          run.stderr,
          new RegExp(`${env.url.replace(/[.]/g, '\\.')}: the MCP server redirected to another origin`),
        );
        assert.ok(run.stderr.includes(recorder.origin), 'the other origin is named');
        assert.deepEqual(recorder.seen, [], 'no request reached the other origin');
        // The redirecting server itself got the request with the custom header: same origin.
        assert.equal(env.mcpProxy.seen('/mcp').at(-1)?.headers['x-tenant'], TENANT);
      } finally {
        env.mcpProxy.clear(fault);
      }
    });
  }

  it('proxy: a redirect mid-session fails that request with a JSON-RPC error naming the server; nothing reaches the other origin', async () => {
    const host = spawnRawHost([env.url, '--header', 'X-Tenant: ${LK_TENANT}'], {
      ...env.env,
      LK_TENANT: TENANT,
    });
    try {
      const init = await host.request('initialize', {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'redirect-host', version: '1' },
      });
      assert.equal(init.error, undefined, JSON.stringify(init.error) + host.stderr());
      host.notify('notifications/initialized');
      const listed = await host.request('tools/list', {});
      assert.equal(listed.error, undefined, JSON.stringify(listed.error));

      const fault = redirectAway();
      try {
        const refused = await host.request('tools/list', {}, 60_000);
        assert.ok(refused.error !== undefined, `expected an error, got ${JSON.stringify(refused.result)}`);
        assert.match(refused.error.message, /redirected to another origin/);
        assert.ok(refused.error.message.includes(env.url), refused.error.message);
        const data = (refused.error.data as { latchkey?: { server?: string; code?: string } }).latchkey;
        assert.equal(data?.server, env.url);
        assert.equal(data?.code, 'MCP_FAILED');
        const called = await host.request('tools/call', { name: 'echo', arguments: { text: 'x' } }, 60_000);
        assert.ok(called.error !== undefined, 'a tools/call is refused the same way');
        assert.ok(fault.hits >= 2);
        assert.deepEqual(recorder.seen, [], 'no request reached the other origin');
        assert.deepEqual(host.junk, [], 'stdout carried MCP messages only');
      } finally {
        env.mcpProxy.clear(fault);
      }
    } finally {
      await host.close();
    }
  });
  it('proxy with a static Authorization header (no OAuth): the same policy, the header goes nowhere else', async () => {
    const fault = redirectAway();
    const host = spawnRawHost([env.url, '--header', 'Authorization: Bearer ${LK_TENANT}'], {
      ...env.env,
      LK_TENANT: TENANT,
    });
    try {
      const init = await host.request(
        'initialize',
        {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'static-host', version: '1' },
        },
        60_000,
      );
      assert.ok(init.error !== undefined, `expected an error, got ${JSON.stringify(init.result)}`);
      assert.match(init.error.message, /redirected to another origin/);
      assert.ok(init.error.message.includes(env.url), init.error.message);
      assert.ok(fault.hits >= 1);
      assert.equal(env.mcpProxy.seen('/mcp').at(-1)?.headers['authorization'], `Bearer ${TENANT}`);
      assert.deepEqual(recorder.seen, [], 'no request reached the other origin');
    } finally {
      env.mcpProxy.clear(fault);
      await host.close();
    }
  });
});

describe('cross-origin redirects are refused over legacy HTTP+SSE too', () => {
  let env: ProxyEnv;
  let front: FaultProxy;
  let sse: TestLegacySseMcpServer;
  let recorder: Recorder;
  before(async () => {
    env = await proxyEnv({ accessTokenTtl: 300 });
    front = await startFaultProxy();
    sse = await startLegacySseMcpServer({ authorizationServer: env.as, frontedBy: front });
    recorder = await startRecorder();
    await env.seedLogin('sse-user', sse.url);
  });
  after(async () => {
    await recorder.close();
    await sse.close();
    await front.close();
    await env.close();
  });

  it('tools --transport sse: a 307 on the stream is refused naming the server; nothing reaches the other origin', async () => {
    const fault = front.inject({
      path: '/sse',
      action: { type: 'status', status: 307, headers: { location: `${recorder.origin}/sse` } },
    });
    try {
      const run = await latchkey(['tools', sse.url, '--transport', 'sse'], env.env);
      assert.equal(run.code, ExitCode.ERROR, run.stderr);
      assert.ok(fault.hits >= 1);
      assert.match(run.stderr, /redirected to another origin/);
      assert.ok(run.stderr.includes(sse.url), run.stderr);
      assert.deepEqual(recorder.seen, [], 'no request reached the other origin');
    } finally {
      front.clear(fault);
    }
  });

  it('proxy --transport sse: a 307 on the message endpoint fails the request; nothing reaches the other origin', async () => {
    const host = spawnRawHost([sse.url, '--transport', 'sse', '--header', 'X-Tenant: ${LK_TENANT}'], {
      ...env.env,
      LK_TENANT: TENANT,
    });
    try {
      const init = await host.request('initialize', {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'redirect-host', version: '1' },
      });
      assert.equal(init.error, undefined, JSON.stringify(init.error) + host.stderr());
      host.notify('notifications/initialized');
      const fault = front.inject({
        path: '/messages',
        action: { type: 'status', status: 307, headers: { location: `${recorder.origin}/messages` } },
      });
      try {
        const refused = await host.request('tools/list', {}, 60_000);
        assert.ok(refused.error !== undefined, `expected an error, got ${JSON.stringify(refused.result)}`);
        assert.match(refused.error.message, /redirected to another origin/);
        assert.ok(refused.error.message.includes(sse.url), refused.error.message);
        assert.ok(fault.hits >= 1);
        assert.deepEqual(recorder.seen, [], 'no request reached the other origin');
        assert.deepEqual(host.junk, []);
      } finally {
        front.clear(fault);
      }
    } finally {
      await host.close();
    }
  });
});
