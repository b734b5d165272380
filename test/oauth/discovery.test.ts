// The MCP discovery chain (AUTH-03..AUTH-14) and scope selection (AUTH-30..34, 61, 67),
// against real servers on 127.0.0.1: the harness's oidc-provider AS and SDK-built MCP
// server behind fault proxies, and a small document server for metadata the harness does
// not produce. No fetch is mocked.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';

import { renderNextStep } from '../../src/cli/next-step.js';
import { type ErrorCode, isLatchkeyError, type LatchkeyError } from '../../src/errors.js';
import { authorizationEndpoint } from '../../src/login/authorization-code.js';
import { loadClientContext } from '../../src/oauth/client-context.js';
import { discoverServer, invalidateDiscovery } from '../../src/oauth/discovery.js';
import { excerpt } from '../../src/oauth/metadata-http.js';
import {
  judgeResource,
  resourceMetadataLocations,
  validateResourceMetadata,
} from '../../src/oauth/resource-metadata.js';
import { selectScopes } from '../../src/oauth/scope.js';
import {
  authorizationServerMetadataUrls,
  fetchAuthorizationServerMetadata,
  validateAuthorizationServerMetadata,
} from '../../src/oauth/server-metadata.js';
import { bearerChallenge } from '../../src/oauth/www-authenticate.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  type FaultProxy,
  startAuthorizationServer,
  startFaultProxy,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';

// ---------------------------------------------------------------------------------------
// Helpers

/** What a document server answers on one path. */
interface Reply {
  status?: number;
  /** JSON-encoded unless `raw` is set. */
  json?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  /** Never answer. */
  hang?: boolean;
}

/** A real HTTP server on 127.0.0.1 serving canned documents and recording request paths. */
interface DocServer {
  readonly origin: string;
  /** Paths requested, in arrival order. */
  readonly requests: string[];
  set(path: string, reply: Reply): void;
  reset(): void;
  close(): Promise<void>;
}

async function startDocServer(): Promise<DocServer> {
  const routes = new Map<string, Reply>();
  const requests: string[] = [];
  const hanging: ServerResponse[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    requests.push(path);
    const reply = routes.get(path);
    if (reply?.hang === true) {
      hanging.push(res);
      return;
    }
    if (reply === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
      return;
    }
    const body = reply.raw ?? JSON.stringify(reply.json);
    res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers }).end(body);
  });
  const sockets = trackSockets(server);
  const origin = await listenOnLoopback(server);
  return {
    origin,
    requests,
    set: (path, reply) => routes.set(path, reply),
    reset() {
      routes.clear();
      requests.length = 0;
    },
    async close() {
      for (const res of hanging) res.destroy();
      await closeServer(server, sockets);
    },
  };
}

/** oidc-provider-like AS metadata for `issuer`, endpoints under it. */
function asDocument(issuer: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const base = issuer.replace(/\/$/, '');
  return {
    issuer,
    authorization_endpoint: `${base}/auth`,
    token_endpoint: `${base}/token`,
    code_challenge_methods_supported: ['S256'],
    scopes_supported: ['openid', 'offline_access'],
    ...extra,
  };
}

async function rejection(promise: Promise<unknown>): Promise<LatchkeyError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isLatchkeyError(error), `expected a LatchkeyError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a rejection');
}

function assertError(
  error: LatchkeyError,
  expected: { code: ErrorCode; server?: string; retryable: boolean; message?: RegExp },
): void {
  assert.equal(error.code, expected.code, error.message);
  assert.equal(error.retryable, expected.retryable, error.message);
  if (expected.server !== undefined) assert.equal(error.server, expected.server);
  if (expected.message !== undefined) assert.match(error.message, expected.message);
  assert.ok(error.nextStep !== undefined && error.nextStep.length > 0, 'every error says what to do next');
}

async function discoveryRecords(
  store: CredentialStore,
  server: string,
  issuers: readonly string[],
): Promise<number> {
  let count = (await store.getDiscovery('protected-resource', server)) === undefined ? 0 : 1;
  for (const issuer of issuers) {
    if ((await store.getDiscovery('authorization-server', issuer)) !== undefined) count++;
  }
  return count;
}

const paths = (proxy: FaultProxy, from = 0): string[] =>
  proxy
    .seen()
    .slice(from)
    .map((r) => `${r.method} ${r.path}`);

// ---------------------------------------------------------------------------------------

describe('discovery against the harness AS and MCP server', () => {
  let asProxy: FaultProxy;
  let mcpProxy: FaultProxy;
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  let store: CredentialStore;

  before(async () => {
    asProxy = await startFaultProxy();
    mcpProxy = await startFaultProxy();
    as = await startAuthorizationServer({ frontedBy: asProxy });
    mcp = await startMcpServer({ authorizationServer: as, frontedBy: mcpProxy });
  });
  after(async () => {
    await mcp.close();
    await as.close();
    await asProxy.close();
    await mcpProxy.close();
  });
  beforeEach(() => {
    store = createMemoryStore();
    asProxy.clear();
    mcpProxy.clear();
  });

  async function challengeFromServer(): Promise<ReturnType<typeof bearerChallenge>> {
    const response = await fetch(mcp.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    await response.body?.cancel();
    assert.equal(response.status, 401);
    return bearerChallenge(response);
  }

  it('AUTH-05: PRM from the 401 challenge URL, then AS metadata (AUTH-13 order)', async () => {
    const challenge = await challengeFromServer();
    assert.deepEqual(challenge, { resourceMetadata: mcp.resourceMetadataUrl, scope: ['mcp:tools'] });
    const mcpFrom = mcpProxy.seen().length;
    const asFrom = asProxy.seen().length;
    const discovery = await discoverServer(mcp.url, { store, challenge });
    assert.equal(discovery.server, mcp.url);
    assert.equal(discovery.resource, mcp.url);
    assert.equal(discovery.resourceMetadataUrl, mcp.resourceMetadataUrl);
    assert.deepEqual(discovery.scopesSupported, ['mcp:tools']);
    assert.equal(discovery.authorizationServer.issuer, as.issuer);
    assert.equal(discovery.authorizationServer.token_endpoint, `${as.issuer}/token`);
    assert.deepEqual(paths(mcpProxy, mcpFrom), ['GET /.well-known/oauth-protected-resource/mcp']);
    assert.deepEqual(paths(asProxy, asFrom), ['GET /.well-known/oauth-authorization-server']);
    assert.equal(await discoveryRecords(store, mcp.url, [as.issuer]), 2, 'PRM and AS metadata cached');
    const prm = await store.getDiscovery('protected-resource', mcp.url);
    assert.equal(prm?.sourceUrl, mcp.resourceMetadataUrl);
  });

  it('AUTH-06: without a challenge, the path-inserted well-known URL first', async () => {
    const from = mcpProxy.seen().length;
    const discovery = await discoverServer(mcp.url, { store });
    assert.equal(discovery.resourceMetadataUrl, mcp.resourceMetadataUrl);
    assert.deepEqual(paths(mcpProxy, from), ['GET /.well-known/oauth-protected-resource/mcp']);
  });

  it('AUTH-06: then the root well-known URL when the path-inserted one is 404', async () => {
    mcpProxy.inject({
      path: '/.well-known/oauth-protected-resource/mcp',
      exact: true,
      action: { type: 'status', status: 404 },
    });
    const from = mcpProxy.seen().length;
    const discovery = await discoverServer(mcp.url, { store });
    assert.equal(
      discovery.resourceMetadataUrl,
      `${new URL(mcp.url).origin}/.well-known/oauth-protected-resource`,
    );
    assert.equal(discovery.resource, mcp.url, 'the harness root document names the server itself');
    assert.deepEqual(paths(mcpProxy, from), [
      'GET /.well-known/oauth-protected-resource/mcp',
      'GET /.well-known/oauth-protected-resource',
    ]);
  });

  it('a hostile WWW-Authenticate does not derail discovery; unusable metadata URLs are never fetched', async () => {
    const hostile = [
      'Bearer resource_metadata="http://169.254.169.254/latest/meta-data", scope="a',
      'Bearer resource_metadata="javascript:alert(1)"',
      'Bearer resource_metadata="file:///etc/passwd"',
      'Bearer resource_metadata="https://user:pw@evil.example/x"',
      'Bearer resource_metadata=, ,,"\\',
      `Bearer ${'"'.repeat(10_000)}`,
    ];
    for (const header of hostile) {
      const challenge = bearerChallenge(header);
      const from = mcpProxy.seen().length;
      const discovery = await discoverServer(mcp.url, { store: createMemoryStore(), challenge });
      assert.equal(discovery.authorizationServer.issuer, as.issuer, header);
      assert.deepEqual(paths(mcpProxy, from), ['GET /.well-known/oauth-protected-resource/mcp'], header);
    }
    assert.deepEqual(
      resourceMetadataLocations('https://mcp.example.com/mcp', 'http://127.0.0.1:8080/prm').map(
        (l) => l.position,
      ),
      ['path', 'root'],
      'a remote server cannot aim discovery at this machine',
    );
    assert.deepEqual(
      resourceMetadataLocations('https://mcp.example.com/mcp', 'https://meta.example.com/prm#frag'),
      [
        { url: 'https://meta.example.com/prm', position: 'challenge' },
        { url: 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp', position: 'path' },
        { url: 'https://mcp.example.com/.well-known/oauth-protected-resource', position: 'root' },
      ],
    );
  });

  it('503 from the AS: retryable AS_UNAVAILABLE naming the server; nothing cached; works once it is back', async () => {
    const outage = asProxy.inject({ path: '/.well-known/', action: { type: 'status', status: 503 } });
    const error = await rejection(discoverServer(mcp.url, { store }));
    assertError(error, { code: 'AS_UNAVAILABLE', server: mcp.url, retryable: true, message: /HTTP 503/ });
    assert.equal(await discoveryRecords(store, mcp.url, [as.issuer]), 0, 'cache not poisoned');
    asProxy.clear(outage);
    const discovery = await discoverServer(mcp.url, { store });
    assert.equal(discovery.authorizationServer.issuer, as.issuer);
  });

  it('503 from the MCP server metadata: retryable, no fallback to less specific documents', async () => {
    mcpProxy.inject({
      path: '/.well-known/',
      action: { type: 'status', status: 503, body: 'x'.repeat(500) },
    });
    const from = mcpProxy.seen().length;
    const error = await rejection(discoverServer(mcp.url, { store }));
    assertError(error, { code: 'AS_UNAVAILABLE', server: mcp.url, retryable: true });
    assert.deepEqual(paths(mcpProxy, from), ['GET /.well-known/oauth-protected-resource/mcp']);
    assert.match(error.message, /body starts "x{60}…"/, 'a short excerpt of the body');
    assert.ok(!error.message.includes('x'.repeat(61)), 'and no more');
    assert.equal(await discoveryRecords(store, mcp.url, [as.issuer]), 0);
  });

  it('a hanging AS times out (retryable) instead of waiting forever', async () => {
    asProxy.inject({ path: '/.well-known/', action: { type: 'timeout' } });
    const started = Date.now();
    const error = await rejection(discoverServer(mcp.url, { store, timeoutMs: 300 }));
    assertError(error, { code: 'AS_UNAVAILABLE', retryable: true, message: /no answer within 300 ms/ });
    assert.ok(Date.now() - started < 3000);
  });

  it('a caller abort is CANCELLED, not a discovery failure', async () => {
    mcpProxy.inject({ path: '/.well-known/', action: { type: 'timeout' } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const error = await rejection(discoverServer(mcp.url, { store, signal: controller.signal }));
    assert.equal(error.code, 'CANCELLED');
    assert.equal(error.server, mcp.url);
  });

  it('cache: a second discovery makes no request; invalidateDiscovery forces a refetch', async () => {
    const first = await discoverServer(mcp.url, { store });
    const mcpFrom = mcpProxy.seen().length;
    const asFrom = asProxy.seen().length;
    const second = await discoverServer(mcp.url, { store, challenge: await challengeFromServer() });
    assert.deepEqual(second, first);
    assert.deepEqual(paths(mcpProxy, mcpFrom + 1), [], 'no request besides the 401 itself');
    assert.deepEqual(paths(asProxy, asFrom), []);

    await invalidateDiscovery(store, mcp.url);
    assert.equal(await discoveryRecords(store, mcp.url, [as.issuer]), 0);
    await discoverServer(mcp.url, { store });
    assert.equal(paths(mcpProxy, mcpFrom + 1).length, 1);
    assert.equal(paths(asProxy, asFrom).length, 1);

    const asOnly = asProxy.seen().length;
    await invalidateDiscovery(store, mcp.url, as.issuer);
    await discoverServer(mcp.url, { store });
    assert.equal(paths(asProxy, asOnly).length, 1, 'AS metadata evicted by issuer');
  });

  it('cache: a challenge naming another metadata URL bypasses it; maxAgeMs expires it', async () => {
    await discoverServer(mcp.url, { store });
    const root = `${new URL(mcp.url).origin}/.well-known/oauth-protected-resource`;
    let from = mcpProxy.seen().length;
    const discovery = await discoverServer(mcp.url, { store, challenge: { resourceMetadata: root } });
    assert.equal(discovery.resourceMetadataUrl, root);
    assert.deepEqual(paths(mcpProxy, from), ['GET /.well-known/oauth-protected-resource']);

    from = mcpProxy.seen().length;
    const asFrom = asProxy.seen().length;
    await discoverServer(mcp.url, { store, maxAgeMs: 0 });
    assert.equal(paths(mcpProxy, from).length, 1);
    assert.equal(paths(asProxy, asFrom).length, 1);
  });

  it('cache: expired documents are still used while refetching fails transiently', async () => {
    const fresh = await discoverServer(mcp.url, { store });
    mcpProxy.inject({ path: '/.well-known/', action: { type: 'status', status: 502 } });
    asProxy.inject({ path: '/.well-known/', action: { type: 'status', status: 502 } });
    assert.deepEqual(await discoverServer(mcp.url, { store, maxAgeMs: 0 }), fresh);
  });

  it('loadClientContext (token refresh) reads AS metadata through the same cache', async () => {
    const from = asProxy.seen().length;
    const ctx = await loadClientContext(store, mcp.url, as.issuer, as.clientId);
    assert.equal(ctx.as.issuer, as.issuer);
    assert.equal(ctx.client.client_id, as.clientId);
    assert.deepEqual(paths(asProxy, from), ['GET /.well-known/oauth-authorization-server']);
    await loadClientContext(store, mcp.url, as.issuer, as.clientId);
    assert.equal(paths(asProxy, from).length, 1, 'second context from the cache');
    assert.equal(
      (await discoverServer(mcp.url, { store })).authorizationServer.issuer,
      as.issuer,
      'discovery reuses what the refresh cached',
    );
    assert.equal(paths(asProxy, from).length, 1);
  });

  it('loadClientContext: a cached document for another issuer is not trusted', async () => {
    await store.putDiscovery({
      kind: 'authorization-server',
      id: as.issuer,
      document: asDocument('https://attacker.example'),
      sourceUrl: 'https://attacker.example/.well-known/oauth-authorization-server',
      fetchedAt: Date.now(),
    });
    const ctx = await loadClientContext(store, mcp.url, as.issuer, as.clientId);
    assert.equal(ctx.as.issuer, as.issuer);
    assert.equal(
      (await store.getDiscovery('authorization-server', as.issuer))?.document['issuer'],
      as.issuer,
    );
  });

  it('invalid input: not a URL, or plain http to a remote host', async () => {
    assertError(await rejection(discoverServer('not a url', { store })), {
      code: 'INVALID_INPUT',
      retryable: false,
    });
    assertError(await rejection(discoverServer('http://mcp.example.com/mcp', { store })), {
      code: 'INVALID_INPUT',
      server: 'http://mcp.example.com/mcp',
      retryable: false,
    });
  });
});

// ---------------------------------------------------------------------------------------

describe('discovery against custom metadata documents', () => {
  let docs: DocServer;
  let store: CredentialStore;
  let server: string;
  const prmPath = '/.well-known/oauth-protected-resource/mcp';

  before(async () => {
    docs = await startDocServer();
    server = `${docs.origin}/mcp`;
  });
  after(() => docs.close());
  beforeEach(() => {
    docs.reset();
    store = createMemoryStore();
  });

  function servePrm(authorizationServers: unknown, extra: Record<string, unknown> = {}): void {
    docs.set(prmPath, { json: { resource: server, authorization_servers: authorizationServers, ...extra } });
  }

  it('AUTH-12: an issuer with a path is looked up at the three locations, in order', async () => {
    const issuer = `${docs.origin}/tenant1`;
    assert.deepEqual(authorizationServerMetadataUrls(issuer), [
      `${docs.origin}/.well-known/oauth-authorization-server/tenant1`,
      `${docs.origin}/.well-known/openid-configuration/tenant1`,
      `${docs.origin}/tenant1/.well-known/openid-configuration`,
    ]);
    assert.deepEqual(authorizationServerMetadataUrls(`${issuer}/`), authorizationServerMetadataUrls(issuer));

    servePrm([issuer]);
    docs.set('/tenant1/.well-known/openid-configuration', { json: asDocument(issuer) });
    const discovery = await discoverServer(server, { store });
    assert.equal(discovery.authorizationServer.issuer, issuer);
    assert.deepEqual(docs.requests, [
      prmPath,
      '/.well-known/oauth-authorization-server/tenant1',
      '/.well-known/openid-configuration/tenant1',
      '/tenant1/.well-known/openid-configuration',
    ]);
    assert.equal(
      (await store.getDiscovery('authorization-server', issuer))?.sourceUrl,
      `${docs.origin}/tenant1/.well-known/openid-configuration`,
    );

    docs.reset();
    docs.set('/.well-known/openid-configuration/tenant1', { json: asDocument(issuer) });
    await fetchAuthorizationServerMetadata(issuer, { server });
    assert.deepEqual(docs.requests, [
      '/.well-known/oauth-authorization-server/tenant1',
      '/.well-known/openid-configuration/tenant1',
    ]);

    docs.reset();
    docs.set('/.well-known/oauth-authorization-server/tenant1', { json: asDocument(issuer) });
    docs.set('/tenant1/.well-known/openid-configuration', { json: asDocument(issuer) });
    await fetchAuthorizationServerMetadata(issuer, { server });
    assert.deepEqual(docs.requests, ['/.well-known/oauth-authorization-server/tenant1']);
  });

  it('AUTH-13: an issuer without a path: oauth-authorization-server, then openid-configuration', async () => {
    assert.deepEqual(authorizationServerMetadataUrls(docs.origin), [
      `${docs.origin}/.well-known/oauth-authorization-server`,
      `${docs.origin}/.well-known/openid-configuration`,
    ]);
    docs.set('/.well-known/openid-configuration', { json: asDocument(docs.origin) });
    const { url } = await fetchAuthorizationServerMetadata(docs.origin, { server });
    assert.equal(url, `${docs.origin}/.well-known/openid-configuration`);
    assert.deepEqual(docs.requests, [
      '/.well-known/oauth-authorization-server',
      '/.well-known/openid-configuration',
    ]);
  });

  it('AUTH-14: an issuer mismatch is a permanent error naming the server, and nothing is stored', async () => {
    const issuer = `${docs.origin}/as`;
    servePrm([issuer]);
    docs.set('/.well-known/oauth-authorization-server/as', { json: asDocument(`${docs.origin}/evil`) });
    const error = await rejection(discoverServer(server, { store }));
    assertError(error, {
      code: 'DISCOVERY_FAILED',
      server,
      retryable: false,
      message: /names issuer ".*\/evil", not ".*\/as"/,
    });
    assert.equal(await discoveryRecords(store, server, [issuer, `${docs.origin}/evil`]), 0);
    assert.deepEqual(docs.requests, [
      prmPath,
      '/.well-known/oauth-authorization-server/as',
      '/.well-known/openid-configuration/as',
      '/as/.well-known/openid-configuration',
    ]);
  });

  it('AUTH-14: identical means identical: case, path and port differences are mismatches', () => {
    const issuer = 'https://as.example.com/tenant';
    for (const claimed of [
      'https://AS.example.com/tenant',
      'https://as.example.com/tenant/',
      'https://as.example.com:443/tenant',
      'https://as.example.com/Tenant',
      'https://as.example.com/%74enant',
    ]) {
      assert.throws(
        () => validateAuthorizationServerMetadata(asDocument(claimed), issuer, 'https://mcp.example.com'),
        (e: unknown) => isLatchkeyError(e) && e.code === 'DISCOVERY_FAILED' && !e.retryable,
        claimed,
      );
    }
    // The one tolerated difference: an origin with or without its "/" (same well-known URLs).
    const bare = 'https://as.example.com';
    validateAuthorizationServerMetadata(asDocument(`${bare}/`), bare, 'https://mcp.example.com');
    validateAuthorizationServerMetadata(asDocument(bare), `${bare}/`, 'https://mcp.example.com');
  });

  it('an origin issuer listed without "/" whose metadata says "…/" is used under its own spelling', async () => {
    servePrm([docs.origin]);
    docs.set('/.well-known/oauth-authorization-server', { json: asDocument(`${docs.origin}/`) });
    const discovery = await discoverServer(server, { store });
    assert.equal(discovery.authorizationServer.issuer, `${docs.origin}/`);
    docs.reset();
    await discoverServer(server, { store });
    assert.deepEqual(docs.requests, [], 'found in the cache under either spelling');
  });

  it('AUTH-48: plain-http endpoints of a non-loopback AS are refused', () => {
    const issuer = 'https://as.example.com';
    const mcpServer = 'https://mcp.example.com/mcp';
    const check = (document: Record<string, unknown>, iss = issuer): unknown =>
      validateAuthorizationServerMetadata(document, iss, mcpServer);
    assert.ok(check(asDocument(issuer)));
    for (const bad of [
      { authorization_endpoint: 'http://as.example.com/auth' },
      { token_endpoint: 'http://127.0.0.1/token' },
      { revocation_endpoint: 'ftp://as.example.com/revoke' },
      { registration_endpoint: 'not a url' },
      { jwks_uri: 'http://as.example.com/jwks' },
      { token_endpoint: 42 },
      { mtls_endpoint_aliases: { token_endpoint: 'http://as.example.com/mtls/token' } },
    ]) {
      assert.throws(
        () => check(asDocument(issuer, bad)),
        (e: unknown) =>
          isLatchkeyError(e) &&
          e.code === 'DISCOVERY_FAILED' &&
          !e.retryable &&
          e.server === mcpServer &&
          e.message.includes(Object.keys(bad)[0] ?? '?'),
        JSON.stringify(bad),
      );
    }
    // A loopback AS may use loopback http, but not send us to a remote host in the clear.
    const local = 'http://127.0.0.1:8080';
    assert.ok(check(asDocument(local), local));
    assert.throws(() => check(asDocument(local, { token_endpoint: 'http://as.example.com/token' }), local));
  });

  it('RFC 9728 §3.3: a PRM document for another resource is not used', async () => {
    docs.set(prmPath, { json: { resource: `${docs.origin}/mcp/`, authorization_servers: [docs.origin] } });
    const error = await rejection(discoverServer(server, { store }));
    assertError(error, { code: 'DISCOVERY_FAILED', server, retryable: false, message: /is for resource/ });
    assert.equal(error.next?.kind, 'login');
    assert.match(renderNextStep(error.next ?? { kind: 'retry' }), /latchkey login .*\/mcp\//);
    assert.deepEqual(docs.requests, [prmPath], 'an invalid document stops the search');
    assert.equal(await discoveryRecords(store, server, [docs.origin]), 0);

    const location = { url: 'https://mcp.example.com/x', position: 'path' as const };
    for (const resource of [
      'https://MCP.example.com/mcp',
      'https://mcp.example.com/mcp?x',
      'https://mcp.example.com/m',
      'https://mcp.example.com/mcp/tools',
      'https://mcp.example.com:443/',
      'https://mcp.example.com.evil.example/',
      'https://other.example.com/mcp',
      'http://mcp.example.com/',
      42,
    ]) {
      assert.throws(
        () =>
          validateResourceMetadata(
            { resource, authorization_servers: ['https://as.example.com'] },
            'https://mcp.example.com/mcp',
            location,
          ),
        /is for resource/,
        String(resource),
      );
    }
  });

  it('one resource rule everywhere: the server URL, or a same-origin parent at a segment boundary', () => {
    const server = 'https://mcp.example.com/api/mcp';
    const cases: [string, string][] = [
      ['https://mcp.example.com/api/mcp', 'identical'],
      ['https://mcp.example.com', 'prefix'],
      ['https://mcp.example.com/', 'prefix'],
      ['https://mcp.example.com/api', 'prefix'],
      ['https://mcp.example.com/api/', 'prefix'],
      ['https://mcp.example.com/ap', 'mismatch'],
      ['https://mcp.example.com/api/mcp/', 'mismatch'],
      ['https://mcp.example.com/api?x=1', 'mismatch'],
    ];
    for (const [resource, expected] of cases) {
      assert.equal(judgeResource(resource, server), expected, resource);
      // The position a document was found at does not change the verdict.
      for (const position of ['challenge', 'path', 'root'] as const) {
        const run = (): unknown =>
          validateResourceMetadata({ resource, authorization_servers: ['https://as.example.com'] }, server, {
            url: 'https://mcp.example.com/x',
            position,
          });
        if (expected === 'mismatch') assert.throws(run, /is for resource/, `${resource} at ${position}`);
        else assert.doesNotThrow(run, `${resource} at ${position}`);
      }
    }
  });

  it('the root document may describe the origin; that resource is then sent', async () => {
    docs.set('/.well-known/oauth-protected-resource', {
      json: { resource: docs.origin, authorization_servers: [docs.origin], scopes_supported: ['a', 7, 'b'] },
    });
    docs.set('/.well-known/oauth-authorization-server', { json: asDocument(docs.origin) });
    const discovery = await discoverServer(server, { store });
    assert.equal(discovery.resource, docs.origin);
    assert.equal(discovery.server, server);
    assert.deepEqual(discovery.scopesSupported, ['a', 'b']);
    assert.equal(discovery.resourceMetadataUrl, `${docs.origin}/.well-known/oauth-protected-resource`);
  });

  it('documents that are not metadata (HTML, oversized, cross-origin redirect) count as absent', async () => {
    docs.set(prmPath, { raw: '<!doctype html><title>app</title>', headers: { 'content-type': 'text/html' } });
    docs.set('/.well-known/oauth-protected-resource', {
      status: 302,
      raw: '',
      headers: { location: 'https://elsewhere.example/.well-known/oauth-protected-resource' },
    });
    docs.set('/.well-known/oauth-authorization-server', { raw: `{"issuer":"${'x'.repeat(300_000)}"}` });
    docs.set('/.well-known/openid-configuration', { json: asDocument(docs.origin) });
    const discovery = await discoverServer(server, { store });
    assert.equal(discovery.resourceMetadata, undefined, 'legacy fallback: no PRM anywhere');
    assert.equal(discovery.authorizationServer.issuer, docs.origin);
  });

  it('same-origin redirects are followed', async () => {
    docs.set(prmPath, { status: 307, raw: '', headers: { location: '/moved/prm' } });
    docs.set('/moved/prm', { json: { resource: server, authorization_servers: [docs.origin] } });
    docs.set('/.well-known/oauth-authorization-server', { json: asDocument(docs.origin) });
    const discovery = await discoverServer(server, { store });
    assert.equal(
      discovery.resourceMetadataUrl,
      `${docs.origin}${prmPath}`,
      'recorded under the URL asked for',
    );
    assert.deepEqual(docs.requests.slice(0, 2), [prmPath, '/moved/prm']);
  });

  it('PRM must name a usable authorization server', async () => {
    for (const listed of [
      undefined,
      [],
      'https://as.example.com',
      ['http://as.example.com'],
      ['https://a/?q=1'],
      [7],
    ]) {
      docs.reset();
      servePrm(listed);
      const error = await rejection(discoverServer(server, { store }));
      assertError(error, {
        code: 'DISCOVERY_FAILED',
        server,
        retryable: false,
        message: /no usable authorization server/,
      });
    }
  });

  it('AUTH-09: preferredIssuer wins when listed; otherwise the first that validates', async () => {
    const as1 = `${docs.origin}/as1`;
    const as2 = `${docs.origin}/as2`;
    servePrm([as1, as2]);
    docs.set('/.well-known/oauth-authorization-server/as1', { json: asDocument(as1) });
    docs.set('/.well-known/oauth-authorization-server/as2', { json: asDocument(as2) });

    assert.equal(
      (await discoverServer(server, { store: createMemoryStore() })).authorizationServer.issuer,
      as1,
    );
    docs.requests.length = 0;
    const preferred = await discoverServer(server, { store: createMemoryStore(), preferredIssuer: as2 });
    assert.equal(preferred.authorizationServer.issuer, as2);
    assert.deepEqual(
      docs.requests,
      [prmPath, '/.well-known/oauth-authorization-server/as2'],
      'as1 not even fetched',
    );
    const unlisted = await discoverServer(server, {
      store: createMemoryStore(),
      preferredIssuer: `${docs.origin}/gone`,
    });
    assert.equal(unlisted.authorizationServer.issuer, as1, 'an issuer no longer listed is ignored (AUTH-28)');

    docs.set('/.well-known/oauth-authorization-server/as1', { json: asDocument(`${docs.origin}/other`) });
    const fallback = await discoverServer(server, { store });
    assert.equal(fallback.authorizationServer.issuer, as2, 'as1 is rejected, as2 validates');
    assert.equal(await store.getDiscovery('authorization-server', as1), undefined);
    assert.ok(await store.getDiscovery('authorization-server', as2));
  });

  it('several authorization servers failing: retryable if any failure was transient', async () => {
    const as1 = `${docs.origin}/as1`;
    const as2 = `${docs.origin}/as2`;
    servePrm([as1, as2]);
    docs.set('/.well-known/oauth-authorization-server/as1', { json: asDocument(`${docs.origin}/other`) });
    for (const path of authorizationServerMetadataUrls(as2)) {
      docs.set(new URL(path).pathname, { status: 500, raw: 'boom' });
    }
    const error = await rejection(discoverServer(server, { store }));
    assertError(error, { code: 'DISCOVERY_FAILED', server, retryable: true, message: /none of the 2/ });
  });

  it('no PRM at all: the origin is the AS (2025-03-26) only if its metadata exists', async () => {
    docs.set('/.well-known/oauth-authorization-server', { json: asDocument(docs.origin) });
    const legacy = await discoverServer(server, { store });
    assert.equal(legacy.authorizationServer.issuer, docs.origin);
    assert.equal(legacy.resource, server);
    assert.equal(legacy.resourceMetadata, undefined);
    assert.equal(legacy.resourceMetadataUrl, undefined);
    assert.deepEqual(docs.requests, [
      prmPath,
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-authorization-server',
    ]);

    docs.reset();
    const error = await rejection(discoverServer(server, { store: createMemoryStore() }));
    assertError(error, {
      code: 'DISCOVERY_FAILED',
      server,
      retryable: false,
      message: /no protected resource metadata .* is not an authorization server/,
    });

    docs.reset();
    docs.set('/.well-known/oauth-authorization-server', { json: asDocument('https://auth.example.com') });
    assertError(await rejection(discoverServer(server, { store: createMemoryStore() })), {
      code: 'DISCOVERY_FAILED',
      server,
      retryable: false,
      message: /names issuer/,
    });
  });

  it('2025-03-26 (no PRM): root metadata with a same-origin issuer is used, with a warning naming the risk', async () => {
    const issuer = `${docs.origin}/oauth`;
    docs.set('/.well-known/oauth-authorization-server', { json: asDocument(issuer) });
    const warnings: string[] = [];
    const legacy = await discoverServer(server, { store, warn: (text) => warnings.push(text) });
    assert.equal(legacy.authorizationServer.issuer, issuer);
    assert.equal(legacy.authorizationServer.token_endpoint, `${issuer}/token`);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /names issuer ".*\/oauth".*Risk: the RFC 8414 §3\.3 issuer check/);
    assert.ok(warnings[0]?.includes(server), 'the warning names the server');

    // Later (a refresh, after the cache aged out): the issuer is found the same way again.
    const record = await store.getDiscovery('authorization-server', issuer);
    assert.equal(record?.sourceUrl, `${docs.origin}/.well-known/oauth-authorization-server`);
    if (record !== undefined) await store.putDiscovery({ ...record, fetchedAt: 0 });
    docs.requests.length = 0;
    const again = await loadClientContext(store, server, issuer, 'client-1');
    assert.equal(again.as.issuer, issuer);
    assert.equal(docs.requests.at(-1), '/.well-known/oauth-authorization-server');
    assert.ok((await store.getDiscovery('authorization-server', issuer))?.fetchedAt !== 0, 'cached afresh');

    // Another origin's issuer is refused even for a 2025-03-26 server.
    docs.reset();
    docs.set('/.well-known/oauth-authorization-server', { json: asDocument('http://127.0.0.2:1/oauth') });
    assertError(
      await rejection(discoverServer(server, { store: createMemoryStore(), warn: () => undefined })),
      {
        code: 'DISCOVERY_FAILED',
        server,
        retryable: false,
        message: /names issuer/,
      },
    );
  });

  it('a server with PRM keeps AUTH-14: the same same-origin mismatch is refused, with no warning', async () => {
    const issuer = `${docs.origin}/oauth`;
    servePrm([docs.origin]);
    docs.set('/.well-known/oauth-authorization-server', { json: asDocument(issuer) });
    const warnings: string[] = [];
    const error = await rejection(discoverServer(server, { store, warn: (text) => warnings.push(text) }));
    assertError(error, {
      code: 'DISCOVERY_FAILED',
      server,
      retryable: false,
      message: /names issuer .*RFC 8414/,
    });
    assert.deepEqual(warnings, []);

    // AUTH-45 too: an AS that a PRM names and that does not advertise S256 is refused.
    docs.set('/.well-known/oauth-authorization-server', {
      json: asDocument(docs.origin, { code_challenge_methods_supported: undefined }),
    });
    const later: string[] = [];
    const strict = await discoverServer(server, { store: createMemoryStore(), warn: (t) => later.push(t) });
    assert.throws(() => authorizationEndpoint(strict.authorizationServer, server), /PKCE S256/);
    assert.deepEqual(later, []);
  });

  it('2025-03-26 (no PRM, no metadata, a Bearer challenge): the default endpoints, with a warning', async () => {
    const warnings: string[] = [];
    const warn = (text: string): number => warnings.push(text);
    const legacy = await discoverServer(server, { store, challenge: {}, warn });
    const as = legacy.authorizationServer;
    assert.equal(as.issuer, docs.origin);
    assert.equal(as.authorization_endpoint, `${docs.origin}/authorize`);
    assert.equal(as.token_endpoint, `${docs.origin}/token`);
    assert.equal(as.registration_endpoint, `${docs.origin}/register`);
    assert.equal(legacy.resource, server);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /default endpoints .*Risk: nothing confirms .*PKCE/);
    // A refresh finds the token endpoint again once the cached document is old.
    const ctx = await loadClientContext(store, server, docs.origin, 'client-1');
    assert.equal(ctx.as.token_endpoint, `${docs.origin}/token`);
    const aged = await store.getDiscovery('authorization-server', docs.origin);
    assert.ok(aged !== undefined);
    await store.putDiscovery({ ...aged, fetchedAt: 0 });
    const refreshed = await loadClientContext(store, server, docs.origin, 'client-1');
    assert.equal(refreshed.as.token_endpoint, `${docs.origin}/token`);

    // Metadata that exists wins over the defaults, and is held to AUTH-45 like any other.
    docs.set('/.well-known/oauth-authorization-server', {
      json: asDocument(docs.origin, { code_challenge_methods_supported: undefined }),
    });
    const withMetadata = await discoverServer(server, { store: createMemoryStore(), challenge: {}, warn });
    assert.equal(withMetadata.authorizationServer.authorization_endpoint, `${docs.origin}/auth`);
    assert.equal(warnings.length, 1, 'metadata whose issuer is the origin needs no allowance');
    assert.throws(() => authorizationEndpoint(withMetadata.authorizationServer, server), /PKCE S256/);
  });

  it('a hanging metadata URL is bounded by the timeout', async () => {
    docs.set(prmPath, { hang: true });
    const started = Date.now();
    const error = await rejection(discoverServer(server, { store, timeoutMs: 200 }));
    assertError(error, { code: 'AS_UNAVAILABLE', server, retryable: true });
    assert.ok(Date.now() - started < 2000);
  });

  it('error excerpts are short and sanitized', () => {
    assert.equal(excerpt(''), '');
    const text = excerpt(`<html>\u0000\r\nInjected: log line\u2028${'y'.repeat(500)}SECRET`);
    assert.ok(
      !text.includes('\n') && !text.includes('\r') && !text.includes('\u2028') && !text.includes('SECRET'),
    );
    assert.ok(text.length < 100, text);
  });
});

// ---------------------------------------------------------------------------------------

describe('selectScopes (AUTH-30..34, AUTH-61, AUTH-67)', () => {
  it('the challenge scope first, treated as authoritative (AUTH-31, AUTH-33)', () => {
    assert.deepEqual(
      selectScopes({ challenge: { scope: ['files:write'] }, scopesSupported: ['files:read'] }),
      ['files:write'],
    );
  });

  it('no set relationship with scopes_supported is assumed (AUTH-32)', () => {
    assert.deepEqual(selectScopes({ challenge: { scope: ['x', 'y'] }, scopesSupported: ['a'] }), ['x', 'y']);
  });

  it('otherwise all of PRM scopes_supported; otherwise omitted (AUTH-31)', () => {
    assert.deepEqual(selectScopes({ challenge: {}, scopesSupported: ['a', 'b'] }), ['a', 'b']);
    assert.equal(selectScopes({}), undefined);
    assert.equal(selectScopes({ challenge: { scope: [] }, scopesSupported: [] }), undefined);
  });

  it('OpenID identity scopes from scopes_supported are not asked for; a challenge naming them is obeyed', () => {
    // better-auth's PRM: asking for openid brings an HS256 ID token the login then rejects.
    const prm = ['openid', 'profile', 'email', 'offline_access', 'mcp:tools'];
    assert.deepEqual(selectScopes({ scopesSupported: prm }), ['offline_access', 'mcp:tools']);
    assert.equal(selectScopes({ scopesSupported: ['openid', 'profile', 'email'] }), undefined);
    assert.deepEqual(selectScopes({ challenge: { scope: ['openid', 'x'] }, scopesSupported: prm }), [
      'openid',
      'x',
    ]);
  });

  it('step-up: the union with what was granted before (AUTH-34, AUTH-67)', () => {
    assert.deepEqual(
      selectScopes({
        challenge: { scope: ['b', 'c'] },
        scopesSupported: ['a'],
        previouslyGranted: ['a', 'b'],
      }),
      ['b', 'c', 'a'],
    );
    assert.deepEqual(selectScopes({ previouslyGranted: ['a'] }), ['a']);
  });

  it('offline_access only when asked for, listed by the AS, and with something else (AUTH-61)', () => {
    const base = { challenge: { scope: ['mcp'] } };
    assert.deepEqual(selectScopes({ ...base, offlineAccess: true, asScopesSupported: ['offline_access'] }), [
      'mcp',
      'offline_access',
    ]);
    assert.deepEqual(selectScopes({ ...base, offlineAccess: true, asScopesSupported: ['openid'] }), ['mcp']);
    assert.deepEqual(selectScopes({ ...base, offlineAccess: true }), ['mcp']);
    assert.deepEqual(selectScopes({ ...base, asScopesSupported: ['offline_access'] }), ['mcp']);
    assert.equal(selectScopes({ offlineAccess: true, asScopesSupported: ['offline_access'] }), undefined);
    assert.deepEqual(
      selectScopes({
        previouslyGranted: ['mcp', 'offline_access'],
        offlineAccess: true,
        asScopesSupported: ['offline_access'],
      }),
      ['mcp', 'offline_access'],
    );
  });

  it('drops values that are not scope tokens and duplicates', () => {
    assert.deepEqual(
      selectScopes({ challenge: { scope: ['a', 'a', 'b"c', 'd\\e', '', 'f\u0001', 'é', 'g'] } }),
      ['a', 'g'],
    );
  });
});
