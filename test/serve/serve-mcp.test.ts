// latchkey serve's MCP endpoint with real parts: the SDK's Client as the host, over Streamable
// HTTP to the gateway, which reaches the real SDK MCP server with the user's credential from
// the real oidc-provider AS (rotating refresh tokens, 2-second access tokens), on SQLite (or
// PostgreSQL with LATCHKEY_TEST_STORE=postgres).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';

import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { McpError } from '@modelcontextprotocol/sdk/types.js';

import { INITIALIZE, type McpEnv, postRpc, rpcError, startMcpEnv, textOf } from './mcp-env.js';

const TTL_S = 2;

describe('latchkey serve: the MCP endpoint', () => {
  let env: McpEnv;
  let alice: Client;
  const keyed = (): Record<string, string> => ({ authorization: `Bearer ${env.key}` });
  /** A raw host's POST of `message` to `subject`'s demo link, with the app key unless told. */
  const post = (subject: string, message: unknown, headers = keyed()): Promise<Response> =>
    postRpc(`${env.serve.url}/v1/subjects/${subject}/mcp/demo`, message, headers);

  before(async () => {
    env = await startMcpEnv({ accessTokenTtl: TTL_S, modernOnly: true });
    await env.connect('alice', 'alice-at-as');
    await env.connect('alice', 'alice-at-as', { upstream: 'modern' });
    alice = await env.host('/v1/subjects/alice/mcp/demo', keyed());
  });

  after(async () => {
    await env.close();
  });

  it("a connected user's tools/call goes through with that user's credential", async () => {
    const { tools } = await alice.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['echo', 'whoami']);
    assert.equal(textOf(await alice.callTool({ name: 'echo', arguments: { text: 'hi' } })), 'hi');
    assert.equal(textOf(await alice.callTool({ name: 'whoami' })), 'alice-at-as');
    assert.equal(alice.getServerVersion()?.name, 'latchkey-test-server', "the upstream's own handshake");
  });

  it('after several token lifetimes idle, with rotation, the first call works without a new sign-in', async () => {
    const signIns = env.as.counters.count('authorization_code', 'ok');
    const refreshes = env.as.counters.count('refresh_token', 'ok');
    await sleep(TTL_S * 3 * 1000 + 500);
    const host = await env.host('/v1/subjects/alice/mcp/demo', keyed());
    assert.equal(textOf(await host.callTool({ name: 'whoami' })), 'alice-at-as');
    assert.ok(env.as.counters.count('refresh_token', 'ok') > refreshes, 'the token was refreshed');
    assert.equal(env.as.counters.count('authorization_code', 'ok'), signIns, 'no new sign-in');
    assert.equal(env.as.counters.count('refresh_token', 'invalid_grant'), 0);
  });

  it('a 2026-07-28 request (sessionless, version in _meta) is served on the same link', async () => {
    const modernCalls = env.mcp.counters.count('modern-tool-run');
    const answer = await post('alice', {
      jsonrpc: '2.0',
      id: 'm1',
      method: 'tools/call',
      params: {
        name: 'whoami',
        arguments: {},
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientInfo': { name: 'modern-host', version: '1' },
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    });
    assert.equal(answer.status, 200);
    const body = (await answer.json()) as { id: string; result?: unknown; error?: unknown };
    assert.equal(body.id, 'm1');
    assert.equal(textOf(body.result), 'alice-at-as', JSON.stringify(body));
    assert.ok(env.mcp.counters.count('modern-tool-run') > modernCalls, "the server's 2026-07-28 face ran it");
  });

  it('a 2025-era host reaches a 2026-only upstream through the bridge', async () => {
    const host = await env.host('/v1/subjects/alice/mcp/modern', keyed());
    assert.equal(textOf(await host.callTool({ name: 'whoami' })), 'alice-at-as');
    assert.ok((env.modern?.counters.count('modern-tool-run') ?? 0) > 0, 'run by the 2026-07-28 server');
  });

  it('an upstream that lost every session (a restart) is recovered without the host noticing', async () => {
    assert.ok(env.mcp.sessionCount > 0);
    const dropped = env.mcp.counters.count('session', 'dropped');
    await env.mcp.dropAllSessions();
    assert.ok(env.mcp.counters.count('session', 'dropped') > dropped);
    assert.equal(textOf(await alice.callTool({ name: 'echo', arguments: { text: 'again' } })), 'again');
    assert.ok(env.mcp.sessionCount > 0, 'a new upstream session was made');
  });

  it('no credential: an elicitation-capable host gets -32042 with the connect link', async () => {
    const host = await env.host('/v1/subjects/bob/mcp/demo', keyed(), { elicitation: { url: {} } });
    assert.match(host.getInstructions() ?? '', /\/\?connect=demo/, 'the handshake completes with the link');
    const error = await rpcError(host.callTool({ name: 'whoami' }));
    assert.equal(error.code, -32042);
    const data = error.data as { elicitations: { mode: string; url: string; elicitationId: string }[] };
    assert.equal(data.elicitations.length, 1);
    assert.equal(data.elicitations[0]?.mode, 'url');
    assert.equal(data.elicitations[0]?.url, `${env.serve.publicUrl}/?connect=demo`);
    assert.ok((data.elicitations[0]?.elicitationId ?? '').length >= 16);
  });

  it('no credential: an older host gets a JSON-RPC error whose message holds the same link', async () => {
    const host = await env.host('/v1/subjects/bob/mcp/demo', keyed());
    const error = await rpcError(host.callTool({ name: 'whoami' }));
    assert.notEqual(error.code, -32042);
    assert.ok(error.message.includes(`${env.serve.publicUrl}/?connect=demo`), error.message);
  });

  it('no credential: a 2026-07-28 host that declared URL elicitation gets an input_required result', async () => {
    const answer = await post('bob', {
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: {
        name: 'whoami',
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } },
        },
      },
    });
    assert.equal(answer.status, 200);
    const body = (await answer.json()) as { id: number; result?: Record<string, unknown> };
    assert.equal(body.id, 7);
    assert.equal(body.result?.['resultType'], 'input_required');
    const requests = body.result?.['inputRequests'] as Record<
      string,
      { method: string; params: Record<string, unknown> }
    >;
    const [request] = Object.values(requests);
    assert.equal(request?.method, 'elicitation/create');
    assert.equal(request?.params['mode'], 'url');
    assert.equal(request?.params['url'], `${env.serve.publicUrl}/?connect=demo`);
  });

  it("isolation: another subject's path, a wrong key and no key never reach alice's connection", async () => {
    const bob = await env.host('/v1/subjects/bob/mcp/demo', keyed());
    const error = await rpcError(bob.callTool({ name: 'whoami' }));
    assert.ok(!error.message.includes('alice'), 'bob is told to connect, not served as alice');
    for (const authorization of ['Bearer lk_000000000000_' + 'A'.repeat(43), undefined]) {
      const answer = await post('alice', INITIALIZE, authorization === undefined ? {} : { authorization });
      assert.equal(answer.status, 401, `key ${authorization === undefined ? 'absent' : 'wrong'}`);
      assert.equal(((await answer.json()) as { error: string }).error, 'unauthorized');
    }
    // alice's session id on bob's path is not bob's session.
    const opened = await post('alice', INITIALIZE);
    const sessionId = opened.headers.get('mcp-session-id') ?? '';
    assert.ok(sessionId !== '');
    const crossed = await fetch(`${env.serve.url}/v1/subjects/bob/mcp/demo`, {
      method: 'DELETE',
      headers: { ...keyed(), 'mcp-session-id': sessionId },
    });
    assert.equal(crossed.status, 404);
  });

  it("another user's disconnect leaves alice's link alone (credential events are per subject)", async () => {
    await env.connect('carol', 'carol-at-as');
    const carol = await env.host('/v1/subjects/carol/mcp/demo', keyed());
    assert.equal(textOf(await carol.callTool({ name: 'whoami' })), 'carol-at-as');
    const gone = await fetch(`${env.serve.url}/v1/subjects/carol/connections/demo`, {
      method: 'DELETE',
      headers: keyed(),
    });
    assert.equal(gone.status, 200);
    const error = await rpcError(carol.callTool({ name: 'whoami' }));
    assert.match(error.message, /\/\?connect=demo/, 'carol must connect again');
    assert.equal(textOf(await alice.callTool({ name: 'whoami' })), 'alice-at-as', 'alice is not logged out');
  });

  it('GET opens an event stream for the session, and DELETE ends it', async () => {
    const opened = await post('alice', INITIALIZE);
    const sessionId = opened.headers.get('mcp-session-id') ?? '';
    const body = (await opened.json()) as { result: { protocolVersion: string } };
    assert.equal(body.result.protocolVersion, '2025-06-18', "the host's version when the gateway speaks it");
    const stream = await fetch(`${env.serve.url}/v1/subjects/alice/mcp/demo`, {
      headers: { ...keyed(), accept: 'text/event-stream', 'mcp-session-id': sessionId },
    });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    const ended = (async () => {
      while (!(await reader.read()).done);
    })();
    const deleted = await fetch(`${env.serve.url}/v1/subjects/alice/mcp/demo`, {
      method: 'DELETE',
      headers: { ...keyed(), 'mcp-session-id': sessionId },
    });
    assert.equal(deleted.status, 200);
    await ended;
    const noAccept = await fetch(`${env.serve.url}/v1/subjects/alice/mcp/demo`, { headers: keyed() });
    assert.equal(noAccept.status, 406);
  });

  it('a transient refresh failure answers an error and never deletes the connection', async () => {
    const fault = env.asProxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      action: { type: 'status', status: 503, body: '{"error":"temporarily_unavailable"}' },
    });
    // From here the token runs out while every refresh (the call's, or the upstream listen
    // stream's) fails at the AS.
    await sleep(TTL_S * 1000 + 500);
    const error = await rpcError(alice.callTool({ name: 'whoami' }));
    assert.ok(fault.hits > 0, 'the refresh reached the AS and failed');
    assert.ok(!error.message.includes('/?connect='), 'not told to connect again');
    const listed = await fetch(`${env.serve.url}/v1/subjects/alice/connections`, { headers: keyed() });
    const { connections } = (await listed.json()) as { connections: { upstream: string; state: string }[] };
    const demo = connections.find((c) => c.upstream === 'demo');
    assert.ok(demo !== undefined, 'the connection is kept');
    assert.equal(demo.state, 'retrying');
    env.asProxy.clear(fault);
    // The manager waits out its retry backoff before it asks the AS again.
    let answer: unknown;
    for (let attempt = 0; attempt < 40 && answer === undefined; attempt++) {
      answer = await alice.callTool({ name: 'whoami' }).catch(async (e: unknown) => {
        assert.equal((e as McpError).code, -32041, 'only the transient error while backing off');
        await sleep(500);
        return undefined;
      });
    }
    assert.equal(textOf(answer), 'alice-at-as', 'works once the AS is back');
  });

  it('the log never holds the app key or a token', async () => {
    const joined = env.logLines.join('\n');
    assert.ok(!joined.includes(env.key));
    const token = await fetch(`${env.serve.url}/v1/subjects/alice/connections/demo/token`, {
      headers: keyed(),
    });
    const { access_token } = (await token.json()) as { access_token: string };
    assert.ok(!joined.includes(access_token));
  });
});
