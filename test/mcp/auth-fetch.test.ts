import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { after, before, describe, it } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { createAuthFetch } from '../../src/mcp/auth-fetch.js';
import { createLoginHook, type LoginOptions } from '../../src/login/login.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  completeAuthorization,
  type FaultProxy,
  startAuthorizationServer,
  startFaultProxy,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';

/** A browser stand-in: the harness driver logs in over HTTP, then delivers the redirect. */
function headlessBrowser(): NonNullable<LoginOptions['openBrowser']> & { opened: number } {
  const open = Object.assign(
    async (url: string) => {
      open.opened++;
      await fetch(await completeAuthorization(url, { subject: 'alice' }));
    },
    { opened: 0 },
  );
  return open;
}

const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
});
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** A server on another origin that records what it was sent. */
async function startRecorder(): Promise<{
  origin: string;
  seen: IncomingHttpHeaders[];
  close(): Promise<void>;
}> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' }).end('recorded');
  });
  const sockets = trackSockets(server);
  const origin = await listenOnLoopback(server);
  return { origin, seen, close: () => closeServer(server, sockets) };
}

function bearerOf(headers: IncomingHttpHeaders): string | undefined {
  return /^Bearer (\S+)$/.exec(headers.authorization ?? '')?.[1];
}

describe('createAuthFetch against a real AS and MCP server', () => {
  let as: TestAuthorizationServer;
  let proxy: FaultProxy;
  let mcp: TestMcpServer;
  let admin: TestMcpServer;
  let recorder: Awaited<ReturnType<typeof startRecorder>>;
  const managers: CredentialManager[] = [];

  function setup(): {
    store: CredentialStore;
    manager: CredentialManager;
    browser: ReturnType<typeof headlessBrowser>;
  } {
    const store = createMemoryStore();
    const browser = headlessBrowser();
    const manager = new CredentialManager({
      store,
      logger: silentLogger,
      acquire: createLoginHook({ store, flow: 'browser', openBrowser: browser, notify: () => undefined }),
    });
    managers.push(manager);
    return { store, manager, browser };
  }

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300, scopes: ['mcp:tools', 'mcp:admin'] });
    // The MCP server is reached through a proxy that can stage redirects and refusals.
    proxy = await startFaultProxy();
    mcp = await startMcpServer({ authorizationServer: as, requiredScopes: ['mcp:tools'], frontedBy: proxy });
    admin = await startMcpServer({ authorizationServer: as, requiredScopes: ['mcp:tools', 'mcp:admin'] });
    recorder = await startRecorder();
  });
  after(async () => {
    for (const m of managers) m.close();
    await recorder.close();
    await admin.close();
    await mcp.close();
    await proxy.close();
    await as.close();
  });

  it('the MCP SDK client works through it: one login, the token on every request (AUTH-54, AUTH-55)', async () => {
    const { manager, browser } = setup();
    const from = proxy.seen().length;
    const client = new Client({ name: 'auth-fetch-test', version: '1' });
    const transport = new StreamableHTTPClientTransport(new URL(mcp.url), {
      fetch: createAuthFetch(mcp.url, { manager }),
    });
    await client.connect(transport);
    const { tools } = await client.listTools();
    assert.ok(tools.some((t) => t.name === 'whoami'));
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    assert.deepEqual(result.content, [{ type: 'text', text: 'alice' }]);
    await client.close();

    assert.equal(browser.opened, 1);
    const requests = proxy
      .seen()
      .slice(from)
      .filter((r) => r.path === '/mcp');
    const token = await manager.getAccessToken(mcp.url);
    assert.equal(bearerOf(requests[0]?.headers ?? {}), undefined, 'the first request went bare');
    assert.ok(requests.length >= 4);
    for (const request of requests.slice(1)) assert.equal(bearerOf(request.headers), token);
    assert.equal(mcp.counters.count('auth', 'missing'), 1, 'only that one was refused');
  });

  it('never sends the token to another origin, also not across a redirect (AUTH-57)', async () => {
    const { manager } = setup();
    const authFetch = createAuthFetch(mcp.url, { manager });
    assert.equal(
      (await authFetch(mcp.url, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE })).status,
      200,
    );
    const token = await manager.getAccessToken(mcp.url);

    // Another origin: passed through untouched, the caller's own headers included.
    await authFetch(`${recorder.origin}/direct`, { headers: { authorization: 'Basic b3duOmhlYWRlcg==' } });
    await authFetch(new Request(`${recorder.origin}/request`));
    assert.equal(recorder.seen[0]?.authorization, 'Basic b3duOmhlYWRlcg==');
    assert.equal(recorder.seen[1]?.authorization, undefined);

    // A redirect within the origin keeps the token; one that leaves it is refused (issue 14,
    // point 8: one policy for every MCP request), so nothing at all goes to the other origin.
    const away = proxy.inject({
      path: '/away',
      action: { type: 'status', status: 307, headers: { location: `${recorder.origin}/landing` } },
    });
    const hop = proxy.inject({
      path: '/hop',
      action: { type: 'status', status: 302, headers: { location: '/away' } },
    });
    await assert.rejects(authFetch(`${new URL(mcp.url).origin}/hop`), (error: unknown) => {
      assert.ok(isLatchkeyError(error), String(error));
      assert.equal(error.code, 'MCP_FAILED');
      assert.equal(error.server, mcp.url);
      assert.match(error.message, /redirected to another origin/);
      return true;
    });
    assert.equal(bearerOf(proxy.seen('/hop').at(-1)?.headers ?? {}), token);
    assert.equal(bearerOf(proxy.seen('/away').at(-1)?.headers ?? {}), token);
    assert.equal(recorder.seen.length, 2, 'nothing reached the other origin');
    proxy.clear(away);
    proxy.clear(hop);
  });

  it('401 for a token the server no longer takes (expired by its clock): refresh, then once more', async () => {
    const { store, manager, browser } = setup();
    const authFetch = createAuthFetch(mcp.url, { manager });
    assert.equal(
      (await authFetch(mcp.url, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE })).status,
      200,
    );
    const [cred] = await store.listCredentials();
    assert.ok(cred !== undefined);
    const expired = proxy.inject({
      path: '/mcp',
      times: 1,
      action: {
        type: 'status',
        status: 401,
        headers: {
          'www-authenticate': `Bearer error="invalid_token", resource_metadata="${mcp.resourceMetadataUrl}"`,
        },
      },
    });

    const refreshes = as.counters.count('refresh_token', 'ok');
    const from = proxy.seen().length;
    // A Request body is buffered before the first send, so the replay carries it again.
    const response = await authFetch(
      new Request(mcp.url, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE }),
    );
    assert.equal(response.status, 200, 'the replayed initialize was complete');
    assert.equal(expired.hits, 1);
    assert.equal(as.counters.count('refresh_token', 'ok'), refreshes + 1, 'refreshed once');
    assert.equal(browser.opened, 1, 'no new login');
    const sent = proxy
      .seen()
      .slice(from)
      .map((r) => bearerOf(r.headers));
    assert.deepEqual(sent, [cred.secrets.accessToken, await manager.getAccessToken(mcp.url)]);
    assert.notEqual(sent[0], sent[1]);
  });

  it('401 after the user revoked access at the AS: the refresh fails, a new login, then once more', async () => {
    const { manager, browser } = setup();
    const authFetch = createAuthFetch(mcp.url, { manager });
    assert.equal(
      (await authFetch(mcp.url, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE })).status,
      200,
    );
    const before = await manager.getAccessToken(mcp.url);
    assert.ok((await as.revokeGrants('alice')) >= 1);
    assert.equal((await as.introspect(before)).active, false);

    const refused = as.counters.count('refresh_token', 'invalid_grant');
    const from = proxy.seen().length;
    const response = await authFetch(mcp.url, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE });
    assert.equal(response.status, 200);
    assert.equal(as.counters.count('refresh_token', 'invalid_grant'), refused + 1, 'the refresh was tried');
    assert.equal(browser.opened, 2, 'then a login');
    const sent = proxy
      .seen()
      .slice(from)
      .filter((r) => r.path === '/mcp')
      .map((r) => bearerOf(r.headers));
    assert.deepEqual(sent, [before, await manager.getAccessToken(mcp.url)]);
  });

  it('401 from a server that moved to another AS: discovery is read afresh, the new AS gets the login', async () => {
    // No refresh tokens: with one, the manager would refresh at the old AS (see the report).
    const oldAs = await startAuthorizationServer({ accessTokenTtl: 300, issueRefreshToken: false });
    const newAs = await startAuthorizationServer({ accessTokenTtl: 300 });
    const front = await startFaultProxy();
    const moving = await startMcpServer({ authorizationServer: oldAs, frontedBy: front });
    newAs.addResource(moving.url);
    try {
      const { store, manager, browser } = setup();
      const authFetch = createAuthFetch(moving.url, { manager });
      const call = (): Promise<Response> =>
        authFetch(moving.url, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE });
      assert.equal((await call()).status, 200);
      front.inject({
        path: '/.well-known/oauth-protected-resource',
        action: {
          type: 'status',
          status: 200,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            resource: moving.url,
            authorization_servers: [newAs.issuer],
            scopes_supported: ['mcp:tools'],
          }),
        },
      });
      front.inject({
        path: '/mcp',
        action: {
          type: 'status',
          status: 401,
          headers: { 'www-authenticate': `Bearer resource_metadata="${moving.resourceMetadataUrl}"` },
        },
      });
      assert.equal((await call()).status, 401, 'the harness server only trusts the old AS');
      assert.equal(browser.opened, 2);
      assert.equal(newAs.counters.count('registration', 'ok'), 1, 'registered anew at the new AS');
      assert.equal(newAs.counters.count('authorization_code', 'ok'), 1);
      const issuers = (await store.listCredentials()).map((c) => c.key.issuer).sort();
      assert.deepEqual(issuers, [newAs.issuer, oldAs.issuer].sort());
    } finally {
      await moving.close();
      await front.close();
      await newAs.close();
      await oldAs.close();
    }
  });

  it('401 again after the retry is the caller’s: one retry only', async () => {
    const { manager } = setup();
    const authFetch = createAuthFetch(mcp.url, { manager });
    await authFetch(mcp.url, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE });
    const refusal = proxy.inject({
      path: '/mcp',
      action: {
        type: 'status',
        status: 401,
        headers: { 'www-authenticate': 'Bearer error="invalid_token"' },
      },
    });
    const response = await authFetch(mcp.url, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE });
    assert.equal(response.status, 401);
    assert.equal(refusal.hits, 2);
    proxy.clear(refusal);
  });

  it('403 insufficient_scope: step-up to the union of scopes by a new login, then the request again', async () => {
    const { manager, browser } = setup();
    const first = await manager.login(admin.url, { scopes: ['mcp:tools'] });
    assert.ok(!first.scopes.includes('mcp:admin'));
    const refreshes = as.counters.count('refresh_token');
    const authFetch = createAuthFetch(admin.url, { manager });
    const response = await authFetch(admin.url, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE });
    assert.equal(response.status, 200);
    assert.equal(admin.counters.count('auth', 'insufficient_scope'), 1);
    assert.equal(browser.opened, 2, 'the step-up was a login');
    assert.equal(as.counters.count('refresh_token'), refreshes, 'refresh cannot widen scope: none was tried');
    const stepped = await manager.getToken(admin.url);
    assert.deepEqual([...stepped.scopes].sort(), ['mcp:admin', 'mcp:tools']);
  });

  it('step-ups are capped per operation (AUTH-65, AUTH-66), then the 403 is returned', async () => {
    const { manager, browser } = setup();
    const authFetch = createAuthFetch(mcp.url, { manager, maxStepUps: 2 });
    await authFetch(mcp.url, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE });
    assert.equal(browser.opened, 1);
    // The server keeps asking for a scope the AS never grants.
    const refusal = proxy.inject({
      path: '/mcp',
      match: (r) => r.method === 'POST',
      action: {
        type: 'status',
        status: 403,
        headers: { 'www-authenticate': 'Bearer error="insufficient_scope", scope="mcp:tools mcp:root"' },
      },
    });
    const call = (): Promise<Response> =>
      authFetch(mcp.url, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE });
    assert.equal((await call()).status, 403);
    assert.equal(refusal.hits, 3, 'the first answer and one per step-up');
    assert.equal(browser.opened, 3, 'two step-up logins');

    // The same operation again: the budget is spent, so no more logins.
    assert.equal((await call()).status, 403);
    assert.equal(refusal.hits, 4);
    assert.equal(browser.opened, 3);

    // A success for the operation resets its budget.
    proxy.clear(refusal);
    assert.equal((await call()).status, 200);
  });
});
