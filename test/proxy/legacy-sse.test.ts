// Acceptance (issue 4): "Legacy HTTP+SSE against an SDK SSE server". A real SDK host spawns
// `latchkey proxy` for a server built on the SDK's SSEServerTransport, protected by the real
// AS like the Streamable HTTP harness server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startLegacySseMcpServer, type TestLegacySseMcpServer } from '../harness/index.js';
import { callsThroughDrops, proxyEnv, type ProxyEnv, text } from '../support/proxy-env.js';

describe('latchkey proxy: legacy HTTP+SSE against an SDK SSE server', () => {
  let env: ProxyEnv;
  let sse: TestLegacySseMcpServer;
  before(async () => {
    env = await proxyEnv();
    sse = await startLegacySseMcpServer({ authorizationServer: env.as });
    await env.seedLogin('local', sse.url);
  });
  after(async () => {
    await env.close();
    await sse.close();
  });

  it('--transport auto: Streamable HTTP is refused, the proxy falls back to SSE and serves the host', async () => {
    const before = sse.counters.snapshot();
    const host = await env.host([], {}, sse.url);
    const tools = await host.client.listTools();
    assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['echo', 'whoami']);
    const result = await host.client.callTool({ name: 'echo', arguments: { text: 'over sse' } });
    assert.equal(text(result), 'over sse');
    const who = await host.client.callTool({ name: 'whoami', arguments: {} });
    assert.equal(text(who), 'local');

    const c = sse.counters;
    const diag = `${JSON.stringify({ before, after: c.snapshot() })}\n${host.stderr()}`;
    // The host's initialize went out as a Streamable HTTP POST first, and only that once.
    assert.equal(c.count('http', 'POST /sse refused'), 1, diag);
    assert.equal(c.count('refused', 'initialize'), 1, diag);
    assert.equal(c.count('refused'), 1, diag);
    // Then everything travelled over one SSE session.
    assert.equal(c.count('http', 'GET /sse'), 1, diag);
    assert.equal(c.count('session', 'created'), 1, diag);
    assert.equal(c.count('rpc', 'initialize'), 1, diag);
    assert.equal(c.count('rpc', 'notifications/initialized'), 1, diag);
    assert.equal(c.count('rpc', 'tools/list'), 1, diag);
    assert.equal(c.count('tool', 'echo'), 1, diag);
    assert.equal(c.count('tool', 'whoami'), 1, diag);
    assert.equal(c.count('auth', 'missing') + c.count('auth', 'invalid_token'), 0, diag);
    assert.equal(sse.sessionCount, 1, diag);
    assert.match(host.stderr(), /does not speak Streamable HTTP; using the HTTP\+SSE transport/);
    await host.close();
  });

  it('--transport auto also falls back when the stream URL answers a POST with 404', async () => {
    const bare = await startLegacySseMcpServer({ authorizationServer: env.as, streamablePostStatus: 404 });
    try {
      await env.seedLogin('local', bare.url);
      const host = await env.host([], {}, bare.url);
      const result = await host.client.callTool({ name: 'echo', arguments: { text: 'after 404' } });
      assert.equal(text(result), 'after 404');
      assert.equal(bare.counters.count('refused', 'initialize'), 1, host.stderr());
      assert.equal(bare.counters.count('session', 'created'), 1, host.stderr());
      assert.equal(bare.counters.count('tool', 'echo'), 1, host.stderr());
      await host.close();
    } finally {
      await bare.close();
    }
  });

  it('--transport sse goes straight to the SSE stream', async () => {
    const refused = sse.counters.count('http', 'POST /sse refused');
    const streams = sse.counters.count('http', 'GET /sse');
    const echoes = sse.counters.count('tool', 'echo');
    const host = await env.host(['--transport', 'sse'], {}, sse.url);
    const tools = await host.client.listTools();
    assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['echo', 'whoami']);
    const result = await host.client.callTool({ name: 'echo', arguments: { text: 'direct' } });
    assert.equal(text(result), 'direct');
    assert.equal(sse.counters.count('http', 'POST /sse refused'), refused, 'no Streamable HTTP attempt');
    assert.equal(sse.counters.count('http', 'GET /sse'), streams + 1, host.stderr());
    assert.equal(sse.counters.count('tool', 'echo'), echoes + 1);
    await host.close();
  });

  it('the server ends every SSE stream: the proxy opens a new session, 0 failed calls', async () => {
    const host = await env.host([], {}, sse.url);
    await host.client.listTools();
    const createdBefore = sse.counters.count('session', 'created');
    const { calls, drops, failures, recoveries } = await callsThroughDrops(host, 5000, async () => {
      assert.equal(sse.sessionCount, 1, 'one live SSE session before the drop');
      await sse.dropAllSessions();
      assert.equal(sse.sessionCount, 0);
    });
    const diag = `${JSON.stringify(sse.counters.snapshot())}\n${host.stderr()}`;
    assert.deepEqual(failures, [], diag);
    assert.ok(calls >= 30, `made ${calls} calls`);
    assert.ok(drops >= 3, `dropped ${drops} times`);
    assert.equal(recoveries.length, drops, diag);
    for (const ms of recoveries) assert.ok(ms < 1000, `recovery took ${ms} ms`);
    // Every drop was followed by exactly one new SSE session, and no stream was left behind.
    assert.equal(sse.counters.count('session', 'created') - createdBefore, drops, diag);
    assert.equal(sse.sessionCount, 1, diag);
    assert.match(host.stderr(), /session re-established/);
    await host.close();
  });
});
