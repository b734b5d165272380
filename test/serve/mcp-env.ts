// What the MCP gateway tests share: the real oidc-provider AS behind the fault proxy, the real
// SDK MCP server, a real store, `latchkey serve`, and the SDK's Client as the host.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ClientCapabilities } from '@modelcontextprotocol/sdk/types.js';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

import { createLogger } from '../../src/log.js';
import { createAppKey } from '../../src/serve/app-keys.js';
import type { JwtConfig } from '../../src/serve/jwt.js';
import { startServe, type RunningServe } from '../../src/serve/server.js';
import { hasServeTables, type ServeStore } from '../../src/store/serve-contract.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { freshDatabase, type TestDatabase, testStoreKind } from '../support/postgres.js';
import {
  completeAuthorization,
  type FaultProxy,
  startAuthorizationServer,
  startFaultProxy,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';

export interface McpEnv {
  as: TestAuthorizationServer;
  asProxy: FaultProxy;
  mcp: TestMcpServer;
  /** A server that speaks 2026-07-28 only, as upstream `modern` (with `modernOnly`). */
  modern: TestMcpServer | undefined;
  store: ServeStore;
  serve: RunningServe;
  key: string;
  logLines: string[];
  /** Run the connect flow for `subject`, signing in at the AS as `asUser`. */
  connect(subject: string, asUser: string, upstream?: string): Promise<void>;
  /** An SDK Client connected to the gateway at `path` with these headers. */
  host(path: string, headers: Record<string, string>, capabilities?: ClientCapabilities): Promise<Client>;
  close(): Promise<void>;
}

export async function startMcpEnv(options: {
  accessTokenTtl: number;
  jwt?: JwtConfig;
  modernOnly?: boolean;
}): Promise<McpEnv> {
  const asProxy = await startFaultProxy();
  const as = await startAuthorizationServer({ accessTokenTtl: options.accessTokenTtl, frontedBy: asProxy });
  const mcp = await startMcpServer({ authorizationServer: as, requiredScopes: ['mcp:tools'] });
  const modern =
    options.modernOnly === true
      ? await startMcpServer({ authorizationServer: as, requiredScopes: ['mcp:tools'], modernOnly: true })
      : undefined;
  const home = await mkdtemp(join(tmpdir(), 'latchkey-serve-mcp-'));
  let database: TestDatabase | undefined;
  if (testStoreKind() === 'postgres') database = await freshDatabase();
  const env = { LATCHKEY_KEY: randomBytes(32).toString('base64') };
  const store =
    database === undefined
      ? await openSqliteStore({ home, env })
      : await openPostgresStore({ url: database.url, env });
  assert.ok(hasServeTables(store));
  const key = (await createAppKey(store, 'portal')).key;
  const logLines: string[] = [];
  const serve = await startServe({
    store,
    upstreams: [
      { id: 'demo', url: mcp.url },
      ...(modern === undefined ? [] : [{ id: 'modern', url: modern.url }]),
    ],
    listen: { host: '127.0.0.1', port: 0 },
    refresher: false,
    logger: createLogger({ level: 'debug', format: 'json', write: (line) => logLines.push(line) }),
    ...(options.jwt === undefined ? {} : { jwt: options.jwt }),
  });
  const clients: Client[] = [];
  return {
    as,
    asProxy,
    mcp,
    modern,
    store,
    serve,
    key,
    logLines,
    async connect(subject, asUser, upstream = 'demo') {
      const started = await fetch(`${serve.url}/v1/subjects/${subject}/connections/${upstream}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ return_to: 'https://app.example.com/done' }),
      });
      assert.equal(started.status, 201);
      const { authorization_url } = (await started.json()) as { authorization_url: string };
      const callback = await completeAuthorization(authorization_url, { subject: asUser });
      const landed = await fetch(callback, { redirect: 'manual' });
      assert.equal(landed.status, 303);
      assert.equal(
        new URL(landed.headers.get('location') ?? '').searchParams.get('latchkey_status'),
        'connected',
      );
    },
    async host(path, headers, capabilities = {}) {
      const client = new Client({ name: 'test-host', version: '1' }, { capabilities });
      const transport = new StreamableHTTPClientTransport(new URL(`${serve.url}${path}`), {
        requestInit: { headers },
      });
      await client.connect(transport);
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients) await client.close().catch(() => undefined);
      await serve.close();
      await store.close();
      await mcp.close();
      await modern?.close();
      await as.close();
      await asProxy.close();
      await rm(home, { recursive: true, force: true });
      await database?.drop();
    },
  };
}

/** A tiny IdP for user JWTs: an ES256 key pair, its JWKS and OpenID metadata on loopback. */
export interface TestIssuer {
  issuer: string;
  sign(claims: { sub: string; aud: string; exp?: number; iss?: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startTestIssuer(): Promise<TestIssuer> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const server: Server = createServer((req, res) => {
    const body =
      req.url === '/.well-known/openid-configuration'
        ? { issuer, jwks_uri: `${issuer}/jwks` }
        : req.url === '/jwks'
          ? { keys: [jwk] }
          : undefined;
    res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    async sign(claims) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(claims.iss ?? issuer)
        .setSubject(claims.sub)
        .setAudience(claims.aud)
        .setIssuedAt(now)
        .setExpirationTime(claims.exp ?? now + 300)
        .sign(privateKey);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
