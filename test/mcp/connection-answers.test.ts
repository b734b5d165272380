/**
 * McpConnection over a scripted fetch, with a credential source that is not a
 * CredentialManager (the narrow McpCredentials interface is all it needs): a request that
 * keeps failing is answered once its rounds run out, and the host's errors carry the next
 * action as data, worded by `describeNext`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { silentLogger } from '../../src/log.js';
import { McpConnection } from '../../src/mcp/connection.js';
import type { McpCredentials } from '../../src/mcp/credentials.js';
import type { JsonRpcMessage, JsonRpcResponse } from '../../src/mcp/jsonrpc.js';
import type { LatchkeyErrorData } from '../../src/mcp/rpc-errors.js';
import type { NextAction } from '../../src/next-action.js';

const SERVER = 'https://mcp.example.com/mcp';

/** Tokens are never asked for (the connection does not authenticate); no events ever come. */
const credentials: McpCredentials = {
  getToken: () => Promise.reject(new Error('no tokens here')),
  getAccessToken: () => Promise.reject(new Error('no tokens here')),
  on: () => undefined,
  off: () => undefined,
  lastEventId: () => Promise.resolve(0),
  readEvents: () => Promise.resolve([]),
};

/** A fetch that answers every request with `status`, counting the POSTs. */
function answering(
  status: number,
  headers: Record<string, string> = {},
): { fetch: typeof fetch; posts: () => number } {
  let posts = 0;
  const fake: typeof fetch = async (_input, init) => {
    if (init?.method === 'POST') posts++;
    return new Response('nope', { status, headers });
  };
  return { fetch: fake, posts: () => posts };
}

function connectionTo(
  fetch: typeof globalThis.fetch,
  describeNext?: (action: NextAction) => string,
): McpConnection {
  return new McpConnection({
    server: SERVER,
    manager: credentials,
    authenticate: false,
    transport: 'streamable-http',
    fetch,
    logger: silentLogger,
    ...(describeNext === undefined ? {} : { describeNext }),
  });
}

async function ask(connection: McpConnection, method: string): Promise<JsonRpcResponse> {
  const answered = new Promise<JsonRpcResponse>((resolve) => {
    connection.onmessage = (message: JsonRpcMessage) => {
      if ('id' in message && message.id === 1 && !('method' in message)) resolve(message as JsonRpcResponse);
    };
  });
  connection.send({ jsonrpc: '2.0', id: 1, method, params: {} });
  return answered;
}

function latchkeyData(response: JsonRpcResponse): LatchkeyErrorData {
  const data = (response.error?.data as { latchkey?: LatchkeyErrorData } | undefined)?.latchkey;
  assert.ok(data !== undefined, JSON.stringify(response));
  return data;
}

describe('McpConnection answers', () => {
  it('a server that stays busy: six attempts, then the host is told', async () => {
    const server = answering(503, { 'retry-after': '0' });
    const connection = connectionTo(server.fetch);
    const response = await ask(connection, 'tools/list');
    await connection.close();
    assert.equal(server.posts(), 6, 'every round was tried');
    assert.equal(response.error?.code, -32041);
    assert.match(response.error?.message ?? '', /HTTP 503/);
    const data = latchkeyData(response);
    assert.equal(data.code, 'HTTP_503');
    assert.equal(data.next?.kind, 'operator');
    assert.equal(data.next.orLogin, true);
  });

  it('a refused credential: the next action is a login, in the words describeNext gives', async () => {
    const server = answering(401);
    const describeNext = (action: NextAction): string => `go to the portal for ${action.kind}`;
    const connection = connectionTo(server.fetch, describeNext);
    const response = await ask(connection, 'tools/call');
    await connection.close();
    assert.equal(server.posts(), 1, 'a 401 is not sent again');
    assert.equal(response.error?.code, -32040);
    assert.match(response.error?.message ?? '', /Next step: go to the portal for login$/);
    const data = latchkeyData(response);
    assert.deepEqual(data.next, { kind: 'login', server: SERVER });
    assert.equal(data.nextStep, 'go to the portal for login');
  });

  it('without describeNext, the library’s neutral words: no CLI command', async () => {
    const connection = connectionTo(answering(401).fetch);
    const response = await ask(connection, 'tools/call');
    await connection.close();
    assert.match(latchkeyData(response).nextStep ?? '', /^log in to https:\/\/mcp\.example\.com\/mcp/);
    assert.doesNotMatch(response.error?.message ?? '', /latchkey login/);
  });
});
