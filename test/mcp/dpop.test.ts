import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { createLogger, type Logger, silentLogger } from '../../src/log.js';
import { createAuthFetch } from '../../src/mcp/auth-fetch.js';
import { createSdkAuthProvider } from '../../src/mcp/sdk-provider.js';
import { createSdk2AuthProvider } from '../../src/mcp/sdk2-provider.js';
import type { JsonRpcMessage } from '../../src/mcp/jsonrpc.js';
import { McpConnection } from '../../src/subpath/mcp.js';
import { createLoginHook } from '../../src/login/login.js';
import { DPOP_ALG } from '../../src/oauth/dpop-proof.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { openStore } from '../../src/store/open.js';
import {
  completeAuthorization,
  type FaultProxy,
  startAuthorizationServer,
  startFaultProxy,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';

const WORKER = fileURLToPath(new URL('../fixtures/dpop-worker.ts', import.meta.url));
const run = promisify(execFile);

/** The real (redacting) logger at debug level, its lines kept to check that no secret reached them. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return Object.assign(createLogger({ level: 'debug', write: (line) => void lines.push(line) }), { lines });
}

interface World {
  as: TestAuthorizationServer;
  asProxy: FaultProxy;
  mcp: TestMcpServer;
  home: string;
  env: Record<string, string>;
  stores: CredentialStore[];
  managers: CredentialManager[];
  /** Every authorization URL a login opened, in order. */
  authorizationUrls: URL[];
}

async function world(dpop: true | 'nonce'): Promise<World> {
  const asProxy = await startFaultProxy();
  const as = await startAuthorizationServer({ accessTokenTtl: 300, frontedBy: asProxy, dpop });
  const mcp = await startMcpServer({ authorizationServer: as, dpop });
  const home = await mkdtemp(join(tmpdir(), 'latchkey-dpop-'));
  const env = {
    LATCHKEY_HOME: home,
    LATCHKEY_KEY: randomBytes(32).toString('base64'),
    LATCHKEY_STORE: join(home, 'latchkey.db'),
  };
  return { as, asProxy, mcp, home, env, stores: [], managers: [], authorizationUrls: [] };
}

async function closeWorld(w: World): Promise<void> {
  for (const m of w.managers) m.close();
  for (const s of w.stores) await s.close().catch(() => undefined);
  await w.mcp.close();
  await w.as.close();
  await w.asProxy.close();
  await rm(w.home, { recursive: true, force: true });
}

async function managerOf(
  w: World,
  logger?: Logger,
): Promise<{ manager: CredentialManager; store: CredentialStore }> {
  const store = await openStore(undefined, { env: { ...process.env, ...w.env } });
  w.stores.push(store);
  const openBrowser = async (url: string): Promise<void> => {
    w.authorizationUrls.push(new URL(url));
    await fetch(await completeAuthorization(url, { subject: 'alice' }));
  };
  const manager = new CredentialManager({
    store,
    ...(logger === undefined ? {} : { logger }),
    watch: false,
    acquire: createLoginHook({ store, flow: 'browser', openBrowser, notify: () => undefined }),
  });
  w.managers.push(manager);
  return { manager, store };
}

/** Log in through the SDK client over createAuthFetch and call a tool. */
async function callWhoami(w: World, manager: CredentialManager): Promise<unknown> {
  const client = new Client({ name: 'dpop-test', version: '1' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(w.mcp.url), { fetch: createAuthFetch(w.mcp.url, { manager }) }),
  );
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  await client.close();
  return result.content;
}

/** A manager that logs in through the browser flow, with `client` as its client config. */
async function bearerManager(w: World, client?: { dpop: false }): Promise<CredentialManager> {
  const store = await openStore(undefined, { env: { ...process.env, ...w.env } });
  w.stores.push(store);
  const openBrowser = async (url: string): Promise<void> => {
    w.authorizationUrls.push(new URL(url));
    await fetch(await completeAuthorization(url, { subject: 'alice' }));
  };
  const hook = createLoginHook({
    store,
    flow: 'browser',
    openBrowser,
    notify: () => undefined,
    ...(client === undefined ? {} : { client }),
  });
  const manager = new CredentialManager({ store, watch: false, logger: silentLogger, acquire: hook });
  w.managers.push(manager);
  return manager;
}

function initializeRequest(): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    }),
  };
}

/** The token for `url` is a bearer token got with no proof, and its refresh keeps it so. */
async function assertStaysBearer(w: World, manager: CredentialManager, url: string): Promise<void> {
  const token = await manager.getToken(url);
  assert.equal(token.tokenType, 'Bearer');
  assert.equal(w.authorizationUrls.at(-1)?.searchParams.has('dpop_jkt'), false, 'no dpop_jkt for bearer');
  const exchange = w.asProxy
    .seen('/token')
    .filter((r) => r.method === 'POST')
    .at(-1);
  assert.equal(exchange?.headers['dpop'], undefined, 'no proof at the token endpoint');
  const refreshed = await manager.getToken(url, { rejectedToken: token.token });
  assert.notEqual(refreshed.token, token.token);
  assert.equal(refreshed.tokenType, 'Bearer', 'the refresh sent no proof, so the token stayed bearer');
}

/** The proof a request carried, decoded (header and claims). */
function proofOf(headers: Record<string, unknown>): {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
} {
  const proof = headers['dpop'];
  assert.equal(typeof proof, 'string', 'the request carried one DPoP proof');
  const [header, claims] = (proof as string)
    .split('.')
    .slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()) as Record<string, unknown>);
  return { header: header ?? {}, claims: claims ?? {} };
}

describe('DPoP (RFC 9449) against a real AS and a proof-checking MCP server', () => {
  describe('without nonces', () => {
    let w: World;
    before(async () => {
      w = await world(true);
    });
    after(() => closeWorld(w));

    it('login, MCP calls, refresh and revocation are all bound to the store key', async () => {
      const logger = recordingLogger();
      const { manager, store } = await managerOf(w, logger);
      assert.deepEqual(await callWhoami(w, manager), [{ type: 'text', text: 'alice' }]);

      const first = await manager.getToken(w.mcp.url);
      assert.equal(first.tokenType, 'DPoP');
      const { thumbprint } = await manager.dpopSigner();
      // The code was bound to the key too (RFC 9449 §10); the AS checks it at the exchange.
      assert.equal(w.authorizationUrls.at(-1)?.searchParams.get('dpop_jkt'), thumbprint);
      const info = await w.as.introspect(first.token);
      assert.equal(
        (info['cnf'] as { jkt?: string } | undefined)?.jkt,
        thumbprint,
        'the AS bound the token to our key',
      );

      // The code exchange carried a proof for the token endpoint, with no ath.
      const [exchange] = w.asProxy.seen('/token').filter((r) => r.method === 'POST');
      const proof = proofOf(exchange?.headers ?? {});
      assert.equal(proof.header['typ'], 'dpop+jwt');
      assert.equal(proof.header['alg'], DPOP_ALG);
      assert.equal(proof.claims['htm'], 'POST');
      assert.equal(proof.claims['htu'], `${w.as.issuer}/token`);
      assert.equal(proof.claims['ath'], undefined);
      // Every MCP request presented the token with a valid proof; none was refused.
      assert.ok(w.mcp.counters.count('dpop', 'ok') >= 3);
      assert.equal(w.mcp.counters.count('dpop', 'invalid_dpop_proof'), 0);
      assert.equal(w.mcp.counters.count('auth', 'invalid_token'), 0);

      // Refresh: the refresh token is bound to the key (oidc-provider checks it for a public
      // client), so a proof by the wrong key would fail with invalid_grant.
      const refreshed = await manager.getToken(w.mcp.url, { rejectedToken: first.token });
      assert.notEqual(refreshed.token, first.token);
      assert.equal(refreshed.tokenType, 'DPoP');
      assert.equal(w.as.counters.count('refresh_token', 'ok'), 1);
      const refreshRequest = w.asProxy
        .seen('/token')
        .filter((r) => r.method === 'POST')
        .at(-1);
      assert.equal(proofOf(refreshRequest?.headers ?? {}).claims['htu'], `${w.as.issuer}/token`);
      assert.deepEqual(await callWhoami(w, manager), [{ type: 'text', text: 'alice' }]);

      // Revocation carries a proof too, and the tokens die at the AS.
      const revokedBefore = w.asProxy.seen('/token/revocation').length;
      await manager.logout(w.mcp.url);
      const revocations = w.asProxy.seen('/token/revocation').slice(revokedBefore);
      assert.ok(revocations.length >= 1);
      for (const r of revocations)
        assert.equal(proofOf(r.headers).claims['htu'], `${w.as.issuer}/token/revocation`);
      assert.equal((await w.as.introspect(refreshed.token)).active, false);

      // No secret in the logs, and the private key nowhere in clear on disk.
      const key = await store.dpopKey(DPOP_ALG, () => assert.fail('the key exists already'));
      const d = (JSON.parse(key.privateJwk) as { d: string }).d;
      for (const line of logger.lines) {
        assert.ok(!line.includes(d), 'the private key was logged');
        assert.ok(!line.includes(first.token), 'a token was logged');
      }
      for (const name of await readdir(w.home)) {
        const bytes = await readFile(join(w.home, name));
        assert.ok(!bytes.includes(d), `${name} holds the private key in clear`);
        assert.ok(!bytes.includes(key.privateJwk), `${name} holds the private JWK in clear`);
      }
    });

    it('a new process on the same store signs with the same key and needs no login', async () => {
      const { manager } = await managerOf(w);
      assert.deepEqual(await callWhoami(w, manager), [{ type: 'text', text: 'alice' }]);
      const { thumbprint } = await manager.dpopSigner();
      const okBefore = w.mcp.counters.count('dpop', 'ok');
      const { stdout } = await run(process.execPath, ['--import', 'tsx', WORKER], {
        env: { ...process.env, ...w.env, LK_SERVER: w.mcp.url },
      });
      const report = JSON.parse(stdout) as { status: number; thumbprint: string; acquisitions: number };
      assert.equal(report.thumbprint, thumbprint, 'the key was read from the store, not made anew');
      assert.equal(report.status, 200, 'the bound token still works from the other process');
      assert.equal(report.acquisitions, 0);
      assert.equal(w.mcp.counters.count('dpop', 'ok'), okBefore + 1);
    });

    it('a DPoP token is never sent as a bearer token, by the fetch or the SDK providers', async () => {
      const { manager } = await managerOf(w);
      await callWhoami(w, manager);
      // A token source that cannot sign: the fetch refuses rather than send the token as Bearer.
      const source = {
        getToken: manager.getToken.bind(manager),
        getAccessToken: manager.getAccessToken.bind(manager),
      };
      const invalidBefore = w.mcp.counters.count('auth', 'invalid_token');
      await assert.rejects(
        createAuthFetch(w.mcp.url, { manager: source })(w.mcp.url, { method: 'POST', body: '{}' }),
        (error: unknown) => isLatchkeyError(error) && /DPoP-bound/.test(error.message),
      );
      assert.equal(w.mcp.counters.count('auth', 'invalid_token'), invalidBefore, 'nothing was sent');
      // The SDKs' auth providers can only send Bearer: they refuse a DPoP token.
      const refused = (error: unknown): boolean => isLatchkeyError(error) && /DPoP-bound/.test(error.message);
      await assert.rejects(Promise.resolve(createSdkAuthProvider(w.mcp.url, { manager }).tokens()), refused);
      await assert.rejects(createSdk2AuthProvider(w.mcp.url, { manager }).token(), refused);
    });
  });

  describe('a bearer-only MCP server behind an AS that offers DPoP', () => {
    let w: World;
    let bearerMcp: TestMcpServer;
    before(async () => {
      w = await world(true);
      bearerMcp = await startMcpServer({ authorizationServer: w.as });
    });
    after(async () => {
      await bearerMcp.close();
      await closeWorld(w);
    });

    it('by default too: the server challenges with Bearer only, so the tokens are bearer tokens', async () => {
      const manager = await bearerManager(w);
      const authFetch = createAuthFetch(bearerMcp.url, { manager });
      const first = await authFetch(bearerMcp.url, initializeRequest());
      await first.body?.cancel();
      assert.equal(first.status, 200);
      await assertStaysBearer(w, manager, bearerMcp.url);
      const again = await authFetch(bearerMcp.url, initializeRequest());
      await again.body?.cancel();
      assert.equal(again.status, 200);
    });

    it('client.dpop false logs in with bearer tokens even where the server challenges with DPoP', async () => {
      // w.mcp challenges with DPoP and its AS offers it: only the opt-out keeps tokens bearer.
      await assertStaysBearer(w, await bearerManager(w, { dpop: false }), w.mcp.url);
    });
  });

  describe('with nonces at the AS and the MCP server', () => {
    let w: World;
    before(async () => {
      w = await world('nonce');
    });
    after(() => closeWorld(w));

    it('answers each use_dpop_nonce once, then keeps sending the nonce', async () => {
      const { manager } = await managerOf(w);
      assert.deepEqual(await callWhoami(w, manager), [{ type: 'text', text: 'alice' }]);

      // AS: the code exchange was refused once for its nonce, then succeeded with it.
      assert.equal(w.as.counters.count('authorization_code', 'use_dpop_nonce'), 1);
      assert.equal(w.as.counters.count('authorization_code', 'ok'), 1);
      const exchanges = w.asProxy.seen('/token').filter((r) => r.method === 'POST');
      assert.equal(proofOf(exchanges[0]?.headers ?? {}).claims['nonce'], undefined);
      assert.equal(typeof proofOf(exchanges[1]?.headers ?? {}).claims['nonce'], 'string');
      assert.notEqual(
        proofOf(exchanges[0]?.headers ?? {}).claims['jti'],
        proofOf(exchanges[1]?.headers ?? {}).claims['jti'],
      );

      // MCP server: one nonce challenge, then every request carried the nonce.
      assert.equal(w.mcp.counters.count('dpop', 'use_dpop_nonce'), 1);
      assert.ok(w.mcp.counters.count('dpop', 'ok') >= 3);

      // A refresh uses the nonce the AS handed out with the last answer: no new challenge.
      const token = await manager.getToken(w.mcp.url);
      const refreshed = await manager.getToken(w.mcp.url, { rejectedToken: token.token });
      assert.equal(refreshed.tokenType, 'DPoP');
      assert.equal(w.as.counters.count('refresh_token', 'ok'), 1);
      assert.ok(w.as.counters.count('refresh_token', 'use_dpop_nonce') <= 1);
      assert.deepEqual(await callWhoami(w, manager), [{ type: 'text', text: 'alice' }]);
      assert.equal(w.mcp.counters.count('dpop', 'use_dpop_nonce'), 1, 'the MCP nonce was remembered');
    });

    it("the proxy's wire (McpConnection on createAuthWire) presents DPoP tokens with proofs and nonces", async () => {
      const { manager } = await managerOf(w);
      await manager.getToken(w.mcp.url); // log in (the connection itself never starts a login)
      const nonceBefore = w.mcp.counters.count('dpop', 'use_dpop_nonce');
      const okBefore = w.mcp.counters.count('dpop', 'ok');
      const connection = new McpConnection({
        server: w.mcp.url,
        manager,
        transport: 'streamable-http',
        logger: silentLogger,
      });
      const answers = new Map<number, JsonRpcMessage>();
      const answered = (id: number): Promise<JsonRpcMessage> =>
        new Promise((resolve) => {
          const poll = (): void => {
            const got = answers.get(id);
            if (got !== undefined) resolve(got);
            else setTimeout(poll, 10);
          };
          poll();
        });
      connection.onmessage = (message) => {
        if ('id' in message && typeof message.id === 'number' && !('method' in message))
          answers.set(message.id, message);
      };
      connection.send({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
      });
      await answered(1);
      connection.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      connection.send({
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'whoami', arguments: {} },
      });
      const result = (await answered(2)) as { result?: { content?: unknown } };
      await connection.close();
      assert.deepEqual(result.result?.content, [{ type: 'text', text: 'alice' }]);
      // A new manager's signer learns the nonce anew: one challenge, then the nonce is sent.
      assert.equal(w.mcp.counters.count('dpop', 'use_dpop_nonce') - nonceBefore, 1);
      assert.ok(w.mcp.counters.count('dpop', 'ok') - okBefore >= 3);
      assert.equal(w.mcp.counters.count('dpop', 'invalid_dpop_proof'), 0);
    });
  });
});
