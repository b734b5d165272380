import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { callsThroughDrops, proxyEnv, type ProxyEnv, text } from '../support/proxy-env.js';

async function pause(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

describe('latchkey proxy: sessions and streams that die', () => {
  let env: ProxyEnv;
  before(async () => {
    env = await proxyEnv();
    await env.seedLogin();
  });
  after(async () => env.close());

  it('the server drops every session mid-stream: no failed call, recovery under 1 s', async () => {
    const host = await env.host();
    const createdBefore = env.mcp.counters.count('session', 'created');
    const { failures, recoveries } = await callsThroughDrops(host, 6000, () => env.mcp.dropAllSessions());
    assert.deepEqual(failures, [], host.stderr());
    assert.ok(recoveries.length >= 3, `saw ${recoveries.length} recoveries`);
    for (const ms of recoveries) assert.ok(ms < 1000, `recovery took ${ms} ms`);
    assert.ok(
      env.mcp.counters.count('session', 'created') - createdBefore >= 3,
      'each drop made a new session',
    );
    assert.match(host.stderr(), /session re-established/);
    await host.close();
  });

  it('re-establishing a session replays initialize and initialized once each', async () => {
    const initialized = (): number => env.mcp.counters.count('rpc', 'notifications/initialized');
    const prior = initialized();
    const host = await env.host();
    // The host's own notifications/initialized travels on its own; let it land first.
    while (initialized() === prior) await pause(10);
    const before = initialized();
    const initializes = env.mcp.counters.count('rpc', 'initialize');
    await env.mcp.dropAllSessions();
    await host.client.listTools();
    assert.equal(env.mcp.counters.count('rpc', 'initialize') - initializes, 1, host.stderr());
    assert.equal(env.mcp.counters.count('rpc', 'notifications/initialized') - before, 1);
    assert.equal(env.mcp.counters.count('rpc', 'resources/subscribe'), 0, 'nothing was subscribed');
    await host.close();
  });

  it('garbage in a response stream: no hang, a new session, and later calls work', async () => {
    const host = await env.host();
    await host.client.listTools();
    const created = env.mcp.counters.count('session', 'created');
    // The host is idle, so the next POST through the proxy is the call below.
    const rule = env.mcpProxy.inject({
      method: 'POST',
      action: { type: 'corrupt-stream', afterEvents: 0, then: 'destroy' },
      times: 1,
    });
    const started = Date.now();
    // echo is not marked idempotent: the server may have run it, so the host gets an error.
    await assert.rejects(host.client.callTool({ name: 'echo', arguments: { text: 'x' } }), (error: Error) => {
      assert.match(error.message, new RegExp(env.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      assert.match(error.message, /may have run/);
      return true;
    });
    assert.ok(Date.now() - started < 5000, 'the broken call was answered promptly');
    assert.equal(rule.hits, 1);
    const result = await host.client.callTool({ name: 'echo', arguments: { text: 'after' } });
    assert.equal(text(result), 'after');
    assert.ok(env.mcp.counters.count('session', 'created') > created, 'a full re-handshake happened');
    await host.close();
  });

  it('garbage in the answer to a read: the read is sent again and the host sees nothing', async () => {
    const host = await env.host();
    await host.client.listTools();
    const listsBefore = env.mcp.counters.count('rpc', 'tools/list');
    const rule = env.mcpProxy.inject({
      method: 'POST',
      action: { type: 'corrupt-stream', afterEvents: 0, then: 'destroy' },
      times: 1,
    });
    const tools = await host.client.listTools();
    assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['echo', 'whoami']);
    // Not a pass by accident: the fault fired on a request the server had processed, and
    // the answer the host got came from a second tools/list.
    assert.equal(rule.hits, 1, 'the corrupted answer was served');
    assert.equal(rule.processedCount, 1, 'the server processed the read whose answer was corrupted');
    assert.ok(
      env.mcp.counters.count('rpc', 'tools/list') >= listsBefore + 2,
      `the read was sent again (${env.mcp.counters.count('rpc', 'tools/list') - listsBefore} tools/list)`,
    );
    await host.close();
  });

  it('garbage on the listen (GET) stream: the session is made anew, calls keep working', async () => {
    const host = await env.host();
    const created = env.mcp.counters.count('session', 'created');
    const rule = env.mcpProxy.inject({
      method: 'GET',
      action: { type: 'corrupt-stream', afterEvents: 0, then: 'destroy' },
      times: 1,
    });
    // The listen stream opens after the handshake; kick it by dropping and waiting.
    await env.mcp.dropAllSessions();
    await host.client.listTools();
    const deadline = Date.now() + 5000;
    while (rule.hits === 0 && Date.now() < deadline) await pause(50);
    assert.equal(rule.hits, 1, 'the GET stream was opened and corrupted');
    const result = await host.client.callTool({ name: 'echo', arguments: { text: 'ok' } });
    assert.equal(text(result), 'ok');
    assert.ok(env.mcp.counters.count('session', 'created') >= created + 2);
    await host.close();
  });
});
