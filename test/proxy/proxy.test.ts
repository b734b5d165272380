import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { proxyEnv, type ProxyEnv, text } from '../support/proxy-env.js';

describe('latchkey proxy: a real SDK host over stdio', () => {
  let env: ProxyEnv;
  before(async () => {
    env = await proxyEnv();
    await env.seedLogin();
  });
  after(async () => env.close());

  it('runs initialize, tools/list and tools/call against the real server', async () => {
    const host = await env.host();
    const tools = await host.client.listTools();
    assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['echo', 'whoami']);
    const result = await host.client.callTool({ name: 'echo', arguments: { text: 'hello' } });
    assert.equal(text(result), 'hello');
    const who = await host.client.callTool({ name: 'whoami', arguments: {} });
    assert.equal(text(who), 'local');
    assert.equal(env.mcp.counters.count('session', 'created'), 1);
  });
});
