// A host that speaks 2026-07-28 (sessionless, request metadata in headers) through
// `latchkey proxy` to the harness server's 2026-07-28 face. No SDK client speaks this revision
// yet, so the host writes JSON-RPC lines itself.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { type ProxyEnv, proxyEnv } from '../support/proxy-env.js';
import { type RawHost, type RawMessage, spawnRawHost } from '../support/raw-host.js';

const META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'raw-host', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

function call(name: string, args: Record<string, unknown>): Record<string, unknown> {
  return { name, arguments: args, _meta: META };
}

function textOf(message: RawMessage): string {
  assert.equal(message.error, undefined, `an error came back: ${JSON.stringify(message.error)}`);
  const content = (message.result as { content?: Array<{ text?: string }> } | undefined)?.content;
  return content?.[0]?.text ?? '';
}

describe('proxy: a 2026-07-28 host', () => {
  let env: ProxyEnv;
  const hosts: RawHost[] = [];
  before(async () => {
    env = await proxyEnv();
    await env.seedLogin('modern-user');
  });
  after(async () => {
    await Promise.all(hosts.map((h) => h.close()));
    await env.close();
  });
  const host = (): RawHost => {
    const h = spawnRawHost([env.url, '--login', 'never'], env.env);
    hosts.push(h);
    return h;
  };

  it('discovers, lists without the badly annotated tool, and calls tools with mirrored headers', async () => {
    const h = host();
    const discover = await h.request('server/discover', { _meta: META });
    assert.deepEqual((discover.result as { supportedVersions: string[] }).supportedVersions, ['2026-07-28']);

    const list = await h.request('tools/list', { _meta: META });
    const names = (list.result as { tools: Array<{ name: string }> }).tools.map((t) => t.name);
    assert.deepEqual(names, ['echo', 'whoami', 'route'], 'broken-header is left out');
    assert.match(h.stderr(), /broken-header/, 'the dropped tool is named on stderr');

    const mismatches = env.mcp.counters.count('modern', 'header-mismatch');
    assert.equal(textOf(await h.request('tools/call', call('echo', { text: 'hi' }))), 'hi');
    assert.equal(textOf(await h.request('tools/call', call('whoami', {}))), 'modern-user');
    const routed = await h.request('tools/call', call('route', { region: 'São Paulo', shard: 3 }));
    assert.equal(textOf(routed), 'region=São Paulo shard=3');
    assert.equal(env.mcp.counters.count('modern', 'header-mismatch'), mismatches, 'every header matched');
    assert.equal(env.mcp.sessionCount, 0, 'no session was opened for a 2026-07-28 host');
    assert.deepEqual(h.junk, [], 'stdout carried JSON-RPC only');
  });

  it('reads tools/list itself when a call is refused for headers it could not know, and retries once', async () => {
    const h = host();
    const mismatches = env.mcp.counters.count('modern', 'header-mismatch');
    const runs = env.mcp.counters.count('modern-tool-run', 'route');
    const lists = env.mcp.counters.count('rpc', 'tools/list');
    const routed = await h.request('tools/call', call('route', { region: 'eu-west', shard: 12 }));
    assert.equal(textOf(routed), 'region=eu-west shard=12');
    assert.equal(env.mcp.counters.count('modern', 'header-mismatch'), mismatches + 1, 'one refusal');
    assert.equal(env.mcp.counters.count('rpc', 'tools/list'), lists + 1, 'one internal tools/list');
    assert.equal(env.mcp.counters.count('modern-tool-run', 'route'), runs + 1, 'the tool ran once');
    assert.equal(routed.id, 1, "the host's own id came back");
  });

  it('re-issues a request whose response stream broke (TR-32), and the tool runs once', async () => {
    const h = host();
    const runs = env.mcp.counters.count('modern-tool-run', 'echo');
    env.mcp.modern.breakNextStreams(1);
    const id = h.start('tools/call', call('echo', { text: 'again' }));
    const answer = await h.answer(id);
    assert.equal(textOf(answer), 'again');
    assert.equal(answer.id, id);
    assert.equal(env.mcp.counters.count('modern', 'stream-broken') >= 1, true);
    assert.equal(env.mcp.counters.count('modern-tool-run', 'echo'), runs + 1);
    assert.deepEqual(h.junk, []);
  });

  it('waits out a 503 that carries a JSON-RPC error, instead of handing it to the host', async () => {
    const h = host();
    const fault = env.mcpProxy.inject({
      method: 'POST',
      path: '/mcp',
      times: 1,
      action: {
        type: 'status',
        status: 503,
        body: JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32603, message: 'overloaded' } }),
        headers: { 'content-type': 'application/json', 'retry-after': '0' },
      },
    });
    const runs = env.mcp.counters.count('modern-tool-run', 'echo');
    assert.equal(textOf(await h.request('tools/call', call('echo', { text: 'after 503' }))), 'after 503');
    assert.equal(fault.hits, 1, 'the first try met the 503');
    assert.equal(env.mcp.counters.count('modern-tool-run', 'echo'), runs + 1);
  });

  it("passes the server's own refusal of an unknown method through to the host", async () => {
    const h = host();
    const answer = await h.request('nope/nothing', { _meta: META });
    assert.equal(answer.error?.code, -32601);
    assert.match(answer.error?.message ?? '', /nope\/nothing/);
  });

  it('keeps a listen stream open without a timeout, relays list changes, and closes it on cancel', async () => {
    const h = spawnRawHost([env.url, '--login', 'never', '--timeout', '1'], env.env);
    hosts.push(h);
    const id = h.start('subscriptions/listen', { _meta: META, notifications: { toolsListChanged: true } });
    await h.waitForNotification('notifications/subscriptions/acknowledged');
    assert.equal(env.mcp.modern.listenStreams, 1);
    // Longer than the 1-s request timeout: a listen is meant to stay open.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    env.mcp.modern.notifyToolsChanged();
    await h.waitForNotification('notifications/tools/list_changed');
    assert.equal(env.mcp.modern.listenStreams, 1, 'the stream is still open');
    h.notify('notifications/cancelled', { requestId: id });
    const closed = Date.now() + 5000;
    while (env.mcp.modern.listenStreams > 0 && Date.now() < closed) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(env.mcp.modern.listenStreams, 0, 'cancelling closed the stream at the server');
    assert.equal(env.mcp.counters.count('rpc', 'notifications/cancelled'), 0, 'no cancel went over HTTP');
    assert.deepEqual(h.junk, []);
  });
});
