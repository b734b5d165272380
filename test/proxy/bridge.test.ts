// A 2025-era host (the MCP SDK 1.x Client, which starts with `initialize`) through
// `latchkey proxy` to a server that speaks only 2026-07-28: no initialize, no sessions.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import { type Host, type ProxyEnv, proxyEnv, text } from '../support/proxy-env.js';

describe('proxy: a 2025-era host bridged to a 2026-only server', () => {
  let env: ProxyEnv;
  let host: Host;
  before(async () => {
    env = await proxyEnv({}, { modernOnly: true });
    await env.seedLogin('bridged-user');
    host = await env.host(['--login', 'never']);
  });
  after(async () => env.close());

  it('answers initialize from server/discover and carries the session over 2026-07-28 requests', async () => {
    // The server refused the host's initialize once, then was asked server/discover.
    assert.equal(env.mcp.counters.count('modern', 'legacy-refused') >= 1, true);
    assert.equal(env.mcp.counters.count('rpc', 'server/discover'), 1);
    assert.deepEqual(host.client.getServerVersion(), { name: 'latchkey-test-server', version: '1.0.0' });
    assert.deepEqual(host.client.getServerCapabilities(), { tools: { listChanged: true } });
    assert.match(host.client.getInstructions() ?? '', /2026-07-28/);

    const tools = await host.client.listTools();
    assert.deepEqual(
      tools.tools.map((t) => t.name),
      ['echo', 'whoami', 'route'],
      'the tool with an invalid x-mcp-header is left out',
    );
    const refusedBefore = env.mcp.counters.count('modern', 'legacy-refused');
    assert.equal(
      text(await host.client.callTool({ name: 'echo', arguments: { text: 'bridged' } })),
      'bridged',
    );
    assert.equal(text(await host.client.callTool({ name: 'whoami', arguments: {} })), 'bridged-user');
    const routed = await host.client.callTool({ name: 'route', arguments: { region: 'Zürich', shard: 2 } });
    assert.equal(text(routed), 'region=Zürich shard=2');
    assert.equal(env.mcp.counters.count('modern', 'header-mismatch'), 0, 'every header matched');
    assert.equal(env.mcp.counters.count('modern', 'legacy-refused'), refusedBefore, 'nothing went as 2025');
    assert.equal(env.mcp.sessionCount, 0);
  });

  it('brings the server’s list changes to the host over a listen stream it keeps open', async () => {
    const changed = new Promise<void>((resolve) =>
      host.client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve()),
    );
    const deadline = Date.now() + 5000;
    while (env.mcp.modern.listenStreams === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(env.mcp.modern.listenStreams, 1, 'one listen stream for the bridged host');
    env.mcp.modern.notifyToolsChanged();
    await Promise.race([
      changed,
      new Promise((_, reject) => setTimeout(() => reject(new Error('no list_changed')), 5000)),
    ]);
  });

  it('re-issues a call whose stream broke, and the tool runs once', async () => {
    const runs = env.mcp.counters.count('modern-tool-run', 'echo');
    const broken = env.mcp.counters.count('modern', 'stream-broken');
    env.mcp.modern.breakNextStreams(1);
    assert.equal(text(await host.client.callTool({ name: 'echo', arguments: { text: 'again' } })), 'again');
    // Not a pass by accident: the stream really broke, so the answer came from the re-issue.
    assert.equal(env.mcp.counters.count('modern', 'stream-broken'), broken + 1, 'the stream broke');
    assert.equal(env.mcp.counters.count('modern-tool-run', 'echo'), runs + 1);
  });

  it('a new login elsewhere re-opens the listen stream under the new credential', async () => {
    const opened = env.mcp.counters.count('modern', 'listen-open');
    await env.seedLogin('second-user');
    const deadline = Date.now() + 10_000;
    while (env.mcp.counters.count('modern', 'listen-open') === opened && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(env.mcp.counters.count('modern', 'listen-open'), opened + 1);
    assert.equal(text(await host.client.callTool({ name: 'whoami', arguments: {} })), 'second-user');
    // Give the old stream a moment to close at the server.
    const settle = Date.now() + 5000;
    while (env.mcp.modern.listenStreams !== 1 && Date.now() < settle)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(env.mcp.modern.listenStreams, 1, 'the old stream was closed');
  });

  it('--protocol legacy: no bridge; the host gets the server’s refusal of initialize', async () => {
    const discovers = env.mcp.counters.count('rpc', 'server/discover');
    await assert.rejects(
      env.host(['--login', 'never', '--protocol', 'legacy']),
      /HTTP 400|Missing MCP-Protocol-Version/,
    );
    assert.equal(env.mcp.counters.count('rpc', 'server/discover'), discovers, 'no server/discover');
  });
});
