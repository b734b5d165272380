// Proves the harness MCP server's 2026-07-28 face with plain fetch: if these pass, a proxy
// test against it fails because of latchkey, not because the server checks headers wrongly.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  obtainTokens,
  startAuthorizationServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from './index.js';

const VERSION = '2026-07-28';
const META = {
  'io.modelcontextprotocol/protocolVersion': VERSION,
  'io.modelcontextprotocol/clientInfo': { name: 't', version: '1' },
};

interface Reply {
  status: number;
  contentType: string;
  messages: Array<Record<string, unknown>>;
}

describe('MCP server, 2026-07-28 face', () => {
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  let token: string;
  before(async () => {
    as = await startAuthorizationServer();
    mcp = await startMcpServer({ authorizationServer: as });
    token = (await obtainTokens(as, { resource: mcp.url, subject: 'alice' })).response.access_token;
  });
  after(async () => {
    await mcp.close();
    await as.close();
  });

  /** POST one JSON-RPC request (id 1 unless the body says otherwise) with `headers`. */
  function send(
    body: Record<string, unknown>,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<Response> {
    return fetch(mcp.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/json, text/event-stream',
        'content-type': 'application/json',
        ...headers,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, ...body }),
      ...(signal === undefined ? {} : { signal }),
    });
  }

  /** `send`, with the answer read to its end (every SSE event's data). */
  async function post(body: Record<string, unknown>, headers: Record<string, string>): Promise<Reply> {
    const response = await send(body, headers);
    const contentType = response.headers.get('content-type') ?? '';
    const text = await response.text();
    const messages = contentType.startsWith('text/event-stream')
      ? text
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>)
      : [JSON.parse(text) as Record<string, unknown>];
    return { status: response.status, contentType, messages };
  }

  const base = (method: string): Record<string, string> => ({
    'mcp-protocol-version': VERSION,
    'mcp-method': method,
  });
  const call = (name: string, args: Record<string, unknown>): Record<string, unknown> => ({
    method: 'tools/call',
    params: { name, arguments: args, _meta: META },
  });

  it('answers server/discover and tools/list without a session', async () => {
    const discover = await post(
      { method: 'server/discover', params: { _meta: META } },
      base('server/discover'),
    );
    assert.equal(discover.status, 200);
    assert.deepEqual(
      (discover.messages[0]?.['result'] as { supportedVersions: string[] }).supportedVersions,
      [VERSION],
    );
    const list = await post({ method: 'tools/list', params: { _meta: META } }, base('tools/list'));
    const names = (list.messages[0]?.['result'] as { tools: Array<{ name: string }> }).tools.map(
      (t) => t.name,
    );
    assert.deepEqual(names, ['echo', 'whoami', 'route', 'broken-header']);
    assert.equal(mcp.sessionCount, 0, 'no session was made');
  });

  it('runs a tool whose headers match, over an SSE response', async () => {
    const before = mcp.counters.count('modern-tool-run', 'route');
    const reply = await post(call('route', { region: 'zürich', shard: 7 }), {
      ...base('tools/call'),
      'mcp-name': 'route',
      'mcp-param-region': `=?base64?${Buffer.from('zürich').toString('base64')}?=`,
      'mcp-param-shard': '7',
    });
    assert.equal(reply.status, 200);
    assert.match(reply.contentType, /^text\/event-stream/);
    const content = (reply.messages[0]?.['result'] as { content: Array<{ text: string }> }).content;
    assert.equal(content[0]?.text, 'region=zürich shard=7');
    assert.equal(mcp.counters.count('modern-tool-run', 'route'), before + 1);
  });

  it('refuses missing or disagreeing headers with 400 and -32020, without running the tool', async () => {
    const runs = mcp.counters.count('modern-tool-run');
    const cases: Array<Record<string, string>> = [
      { 'mcp-protocol-version': VERSION, 'mcp-name': 'route', 'mcp-param-region': 'eu' }, // no Mcp-Method
      { ...base('tools/call'), 'mcp-param-region': 'eu' }, // no Mcp-Name
      { ...base('tools/call'), 'mcp-name': 'echo', 'mcp-param-region': 'eu' }, // wrong name
      { ...base('tools/call'), 'mcp-name': 'route' }, // annotated parameter not mirrored
      { ...base('tools/call'), 'mcp-name': 'route', 'mcp-param-region': 'us' }, // wrong value
      { ...base('tools/list'), 'mcp-name': 'route', 'mcp-param-region': 'eu' }, // wrong method
    ];
    for (const headers of cases) {
      const reply = await post(call('route', { region: 'eu' }), headers);
      assert.equal(reply.status, 400, JSON.stringify(headers));
      assert.equal((reply.messages[0]?.['error'] as { code: number }).code, -32020, JSON.stringify(headers));
    }
    assert.equal(mcp.counters.count('modern-tool-run'), runs, 'no refused call ran');
    assert.equal(mcp.counters.count('modern', 'header-mismatch') >= cases.length, true);
  });

  it('refuses other protocol versions with -32022 naming the supported ones, and unknown methods with 404', async () => {
    const old = await post(
      {
        method: 'tools/list',
        params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } },
      },
      { 'mcp-protocol-version': '2099-01-01', 'mcp-method': 'tools/list' },
    );
    assert.equal(old.status, 400);
    const error = old.messages[0]?.['error'] as { code: number; data: { supported: string[] } };
    assert.equal(error.code, -32022);
    assert.deepEqual(error.data.supported, [VERSION]);
    const unknown = await post({ method: 'nope/nothing', params: { _meta: META } }, base('nope/nothing'));
    assert.equal(unknown.status, 404);
    assert.equal((unknown.messages[0]?.['error'] as { code: number }).code, -32601);
  });

  it('breaks the next stream before the tool runs', async () => {
    const runs = mcp.counters.count('modern-tool-run', 'echo');
    mcp.modern.breakNextStreams(1);
    await assert.rejects(post(call('echo', { text: 'x' }), { ...base('tools/call'), 'mcp-name': 'echo' }));
    assert.equal(mcp.counters.count('modern-tool-run', 'echo'), runs, 'the broken call did not run');
    const reply = await post(call('echo', { text: 'y' }), { ...base('tools/call'), 'mcp-name': 'echo' });
    assert.equal(
      (reply.messages[0]?.['result'] as { content: Array<{ text: string }> }).content[0]?.text,
      'y',
    );
  });

  it('keeps a listen stream open, pushes list changes on it and counts its closing', async () => {
    const abort = new AbortController();
    const response = await send(
      { id: 9, method: 'subscriptions/listen', params: { _meta: META } },
      base('subscriptions/listen'),
      abort.signal,
    );
    assert.equal(response.status, 200);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = '';
    const readUntil = async (needle: string): Promise<void> => {
      while (!seen.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${needle}`);
        seen += value;
      }
    };
    await readUntil('notifications/subscriptions/acknowledged');
    assert.equal(mcp.modern.listenStreams, 1);
    mcp.modern.notifyToolsChanged();
    await readUntil('notifications/tools/list_changed');
    abort.abort();
    await reader.cancel().catch(() => undefined);
    for (let i = 0; i < 100 && mcp.modern.listenStreams > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(mcp.modern.listenStreams, 0);
    assert.equal(mcp.counters.count('modern', 'listen-closed'), 1);
  });
});
