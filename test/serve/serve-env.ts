// The stack every in-process `latchkey serve` test stands on: the real oidc-provider AS
// (optionally behind the fault proxy), the real SDK MCP server, a real store (SQLite, or a
// fresh PostgreSQL database with LATCHKEY_TEST_STORE=postgres), an app key, and `latchkey
// serve` itself logging JSON lines the tests can search for leaks. The tests differ only in
// the options below; what they do on top (a browser, an event stream, hosts) stays with them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ClientCapabilities } from '@modelcontextprotocol/sdk/types.js';

import { createLogger } from '../../src/log.js';
import { createAppKey } from '../../src/serve/app-keys.js';
import { type RunningServe, type ServeOptions, startServe } from '../../src/serve/server.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { hasServeTables, type ServeStore } from '../../src/store/serve-contract.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import {
  completeAuthorization,
  type FaultProxy,
  startAuthorizationServer,
  startFaultProxy,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { freshDatabase, type TestDatabase, testStoreKind } from '../support/postgres.js';

/** What serve takes beyond the parts the environment makes itself. */
export type ServeExtras = Omit<ServeOptions, 'store' | 'upstreams' | 'listen' | 'logger'>;

export interface ServeEnvOptions {
  /** Access-token lifetime at the AS, in seconds. */
  accessTokenTtl: number;
  /** The AS rotates refresh tokens. Default: the harness AS's own (it rotates). */
  rotateRefreshToken?: boolean;
  /** Put the AS behind a fault proxy (`asProxy`), so tests can make it fail. Default false. */
  faultProxy?: boolean;
  /** Also start a server that speaks 2026-07-28 only, as upstream `modern`. Default false. */
  modernOnly?: boolean;
  /** The label of the app key made for the tests. Default `portal`. */
  appKeyLabel?: string;
  /** Options for the main serve instance. Default: `{ refresher: false }`. */
  serve?: ServeExtras;
}

export interface ServeEnv {
  as: TestAuthorizationServer;
  /** The fault proxy in front of the AS, with `faultProxy`. */
  asProxy: FaultProxy | undefined;
  mcp: TestMcpServer;
  /** The 2026-07-28-only server, upstream `modern`, with `modernOnly`. */
  modern: TestMcpServer | undefined;
  /** The first store object (the one `serve` runs on). */
  store: ServeStore;
  serve: RunningServe;
  /** The app key for `serve`'s API. */
  key: string;
  /** The JSON lines the main instance logged (level debug). */
  logLines: string[];
  /** Another store object on the same database, closed with the environment. */
  openStore(): Promise<ServeStore>;
  /** Another serve instance on its own store object, silent, no refresher; the caller closes it. */
  instance(options?: ServeExtras): Promise<RunningServe>;
  /** Run the connect flow for `subject`, signing in at the AS as `asUser`. */
  connect(subject: string, asUser: string, options?: { upstream?: string; returnTo?: string }): Promise<void>;
  /** An SDK Client connected to the gateway at `path` with these headers. */
  host(path: string, headers: Record<string, string>, capabilities?: ClientCapabilities): Promise<Client>;
  close(): Promise<void>;
}

interface Parts {
  asProxy: FaultProxy | undefined;
  as: TestAuthorizationServer;
  mcp: TestMcpServer;
  modern: TestMcpServer | undefined;
}

async function startParts(options: ServeEnvOptions): Promise<Parts> {
  const asProxy = options.faultProxy === true ? await startFaultProxy() : undefined;
  const as = await startAuthorizationServer({
    accessTokenTtl: options.accessTokenTtl,
    ...(options.rotateRefreshToken === undefined ? {} : { rotateRefreshToken: options.rotateRefreshToken }),
    ...(asProxy === undefined ? {} : { frontedBy: asProxy }),
  });
  const mcp = await startMcpServer({ authorizationServer: as, requiredScopes: ['mcp:tools'] });
  const modern =
    options.modernOnly === true
      ? await startMcpServer({ authorizationServer: as, requiredScopes: ['mcp:tools'], modernOnly: true })
      : undefined;
  return { asProxy, as, mcp, modern };
}

/** The store objects on one fresh home directory or database, all closed by `close`. */
async function storeSource(): Promise<{ open(): Promise<ServeStore>; close(): Promise<void> }> {
  const home = await mkdtemp(join(tmpdir(), 'latchkey-serve-'));
  const database: TestDatabase | undefined =
    testStoreKind() === 'postgres' ? await freshDatabase() : undefined;
  const env = { LATCHKEY_KEY: randomBytes(32).toString('base64') };
  const stores: ServeStore[] = [];
  return {
    async open() {
      const store =
        database === undefined
          ? await openSqliteStore({ home, env })
          : await openPostgresStore({ url: database.url, env });
      assert.ok(hasServeTables(store));
      stores.push(store);
      return store;
    },
    async close() {
      for (const store of stores) await store.close();
      await rm(home, { recursive: true, force: true });
      await database?.drop();
    },
  };
}

export async function startServeEnv(options: ServeEnvOptions): Promise<ServeEnv> {
  const parts = await startParts(options);
  const stores = await storeSource();
  const store = await stores.open();
  const key = (await createAppKey(store, options.appKeyLabel ?? 'portal')).key;
  const logLines: string[] = [];
  const upstreams = [
    { id: 'demo', url: parts.mcp.url },
    ...(parts.modern === undefined ? [] : [{ id: 'modern', url: parts.modern.url }]),
  ];
  const listen = { host: '127.0.0.1', port: 0 };
  const serve = await startServe({
    store,
    upstreams,
    listen,
    refresher: false,
    logger: createLogger({ level: 'debug', format: 'json', write: (line) => logLines.push(line) }),
    ...options.serve,
  });
  const clients: Client[] = [];
  return {
    ...parts,
    store,
    serve,
    key,
    logLines,
    openStore: () => stores.open(),
    instance: async (extras = {}) =>
      startServe({
        store: await stores.open(),
        upstreams,
        listen,
        refresher: false,
        logger: createLogger({ level: 'silent' }),
        ...extras,
      }),
    connect: (subject, asUser, how = {}) => connectThroughApi(serve, key, subject, asUser, how),
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
      await stores.close();
      await parts.mcp.close();
      await parts.modern?.close();
      await parts.as.close();
      await parts.asProxy?.close();
    },
  };
}

/**
 * The connect flow as an application drives it: start it with the app key, let the harness's
 * browser stand-in sign in at the AS, and deliver the callback as the browser would.
 */
async function connectThroughApi(
  serve: RunningServe,
  key: string,
  subject: string,
  asUser: string,
  how: { upstream?: string; returnTo?: string },
): Promise<void> {
  const started = await fetch(`${serve.url}/v1/subjects/${subject}/connections/${how.upstream ?? 'demo'}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ return_to: how.returnTo ?? 'https://app.example.com/done' }),
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
}
