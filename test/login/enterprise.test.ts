// Enterprise-managed authorization (SEP-990) end to end against real oidc-provider servers:
// an IdP that signs the user in (authorization code + PKCE, openid) and, through a token
// exchange grant registered with registerGrantType, issues ID-JAGs; and two MCP servers,
// each behind its own oidc-provider AS that redeems ID-JAGs with a registered JWT bearer
// grant, verifying them against the IdP's key with jose. One IdP sign-in, then both servers
// are authorized with no browser; an expired access token is replaced with a fresh ID-JAG.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as jose from 'jose';
import type { ProviderContext } from 'oidc-provider';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import type { ExtraGrant } from '../../src/demo/provider-config.js';
import { loadOidcProvider } from '../../src/demo/load-provider.js';
import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import type { IdpSource } from '../../src/login/enterprise.js';
import { storedIdpSession } from '../../src/login/idp-session.js';
import { createLoginHook } from '../../src/login/login.js';
import { createAuthFetch } from '../../src/mcp/auth-fetch.js';
import { ID_JAG_TOKEN_TYPE, ID_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from '../../src/oauth/id-jag.js';
import { JWT_BEARER_GRANT } from '../../src/oauth/jwt-bearer.js';
import type { ClientConfig } from '../../src/oauth/types.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  completeAuthorization,
  LOOPBACK_REDIRECT_URI,
  obtainTokens,
  startAuthorizationServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { captureIO } from '../support/cli-io.js';
import { spawnRawHost } from '../support/raw-host.js';

const IDP_CLIENT = 'enterprise-app';
const AS_CLIENT = { clientId: 'enterprise-client', clientSecret: 'enterprise-client-secret' };

/** What the grant handlers see of oidc-provider's context. */
interface GrantContext extends ProviderContext {
  oidc: ProviderContext['oidc'] & {
    params: Record<string, string | undefined>;
    client: { clientId: string };
    provider: {
      ClientCredentials: new (init: Record<string, unknown>) => {
        resourceServer?: unknown;
        expiration: number;
        scope?: string;
        save(): Promise<string>;
      };
      ResourceServer: new (id: string, info: Record<string, unknown>) => unknown;
    };
  };
}

interface Exchange {
  audience: string | undefined;
  resource: string | undefined;
}

/** The IdP and a factory of resource ASes, with what they saw. */
async function startWorld(): Promise<World> {
  const { errors } = await loadOidcProvider();
  const signing = await jose.generateKeyPair('ES256');
  const exchanges: Exchange[] = [];
  const redeemed: string[] = [];

  // The IdP: verifies the ID token it issued (its own JWKS) and signs an ID-JAG for the AS.
  const tokenExchange: ExtraGrant = {
    type: TOKEN_EXCHANGE_GRANT,
    params: ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope'],
    handler: async (raw) => {
      const ctx = raw as GrantContext;
      const p = ctx.oidc.params;
      exchanges.push({ audience: p['audience'], resource: p['resource'] });
      if (p['subject_token_type'] !== ID_TOKEN_TYPE || p['requested_token_type'] !== ID_JAG_TOKEN_TYPE)
        throw new errors.InvalidGrant('unsupported token types');
      const issuer = idp.issuer;
      const jwks = jose.createRemoteJWKSet(new URL(`${issuer}/jwks`));
      const { payload } = await jose
        .jwtVerify(p['subject_token'] ?? '', jwks, { issuer, audience: ctx.oidc.client.clientId })
        .catch(() => {
          throw new errors.InvalidGrant('the ID token is not valid');
        });
      const jag = await new jose.SignJWT({ client_id: AS_CLIENT.clientId, resource: p['resource'] })
        .setProtectedHeader({ alg: 'ES256', typ: 'oauth-id-jag+jwt' })
        .setIssuer(issuer)
        .setSubject(String(payload.sub))
        .setAudience(p['audience'] ?? '')
        .setJti(randomUUID())
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(signing.privateKey);
      ctx.body = {
        access_token: jag,
        issued_token_type: ID_JAG_TOKEN_TYPE,
        token_type: 'N_A',
        expires_in: 300,
      };
    },
  };
  const idp: TestAuthorizationServer = await startAuthorizationServer({
    extraGrants: [tokenExchange],
    resources: ['https://idp.example/api'],
    clients: [
      {
        client_id: IDP_CLIENT,
        token_endpoint_auth_method: 'none',
        application_type: 'native',
        redirect_uris: [LOOPBACK_REDIRECT_URI],
        response_types: ['code'],
        grant_types: ['authorization_code', 'refresh_token', TOKEN_EXCHANGE_GRANT],
      },
    ],
  });

  // A resource AS: the ID-JAG must be the IdP's, for this AS and this client, and unused.
  const jwtBearer = (issuer: () => string): ExtraGrant => ({
    type: JWT_BEARER_GRANT,
    params: ['assertion', 'scope', 'resource'],
    handler: async (raw) => {
      const ctx = raw as GrantContext;
      const { payload } = await jose
        .jwtVerify(ctx.oidc.params['assertion'] ?? '', signing.publicKey, {
          issuer: idp.issuer,
          audience: issuer(),
          typ: 'oauth-id-jag+jwt',
        })
        .catch(() => {
          throw new errors.InvalidGrant('the ID-JAG is not valid');
        });
      if (payload['client_id'] !== ctx.oidc.client.clientId) throw new errors.InvalidGrant('wrong client');
      if (payload.jti === undefined || redeemed.includes(payload.jti))
        throw new errors.InvalidGrant('replayed');
      redeemed.push(payload.jti);
      const resource = String(payload['resource']);
      const { ClientCredentials, ResourceServer } = ctx.oidc.provider;
      const token = new ClientCredentials({ client: ctx.oidc.client, scope: 'mcp:tools' });
      token.resourceServer = new ResourceServer(resource, {
        audience: resource,
        scope: 'mcp:tools',
        accessTokenFormat: 'opaque',
      });
      ctx.body = {
        access_token: await token.save(),
        token_type: 'Bearer',
        expires_in: token.expiration,
        scope: 'mcp:tools',
      };
    },
  });
  const startResourceAs = async (): Promise<TestAuthorizationServer> => {
    const self: TestAuthorizationServer = await startAuthorizationServer({
      extraGrants: [jwtBearer(() => self.issuer)],
      clients: [
        {
          client_id: AS_CLIENT.clientId,
          client_secret: AS_CLIENT.clientSecret,
          token_endpoint_auth_method: 'client_secret_basic',
          redirect_uris: [],
          response_types: [],
          grant_types: [JWT_BEARER_GRANT],
        },
      ],
    });
    return self;
  };
  return { idp, startResourceAs, exchanges, redeemed };
}

interface World {
  idp: TestAuthorizationServer;
  startResourceAs: () => Promise<TestAuthorizationServer>;
  exchanges: Exchange[];
  redeemed: string[];
}

let world: World | undefined;

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
});

describe('enterprise-managed authorization (SEP-990)', () => {
  const servers: Array<{ as: TestAuthorizationServer; mcp: TestMcpServer }> = [];
  let idToken = '';
  let browserOpens = 0;

  before(async () => {
    const w = await startWorld();
    world = w;
    for (let i = 0; i < 2; i++) {
      const as = await w.startResourceAs();
      servers.push({
        as,
        mcp: await startMcpServer({ authorizationServer: as, requiredScopes: ['mcp:tools'] }),
      });
    }
    // The one sign-in at the IdP (what `latchkey login --idp` does in the browser).
    const tokens = await obtainTokens(w.idp, {
      resource: 'https://idp.example/api',
      scope: 'openid',
      subject: 'alice',
      clientId: IDP_CLIENT,
    });
    idToken = String(tokens.response['id_token']);
    assert.match(idToken, /^ey/);
  });

  after(async () => {
    for (const { as, mcp } of servers) {
      await mcp.close();
      await as.close();
    }
    await world?.idp.close();
  });

  function firstAs(): TestAuthorizationServer {
    const first = servers[0];
    if (first === undefined) throw new Error('no server started');
    return first.as;
  }

  function firstServer(): TestMcpServer {
    const first = servers[0];
    if (first === undefined) throw new Error('no server started');
    return first.mcp;
  }

  function managerWith(idp: IdpSource | undefined, client: ClientConfig = AS_CLIENT): CredentialManager {
    const store = createMemoryStore();
    return new CredentialManager({
      store,
      logger: silentLogger,
      acquire: createLoginHook({
        store,
        ...(idp === undefined ? {} : { idp }),
        client,
        // The browser stand-in signs in at the AS and delivers the redirect, as a user would.
        openBrowser: async (url) => {
          browserOpens++;
          const callback = await completeAuthorization(new URL(url), { subject: 'alice' });
          void fetch(callback).then((response) => response.body?.cancel());
        },
        notify: () => undefined,
        timeoutMs: 5_000,
      }),
    });
  }

  const idpSource = (): IdpSource => ({
    issuer: (world as World).idp.issuer,
    clientId: IDP_CLIENT,
    idToken: async () => idToken,
  });

  it('authorizes two servers on two ASes from one IdP sign-in, with no browser', async () => {
    const w = world as World;
    const before = w.exchanges.length;
    const manager = managerWith(idpSource());
    try {
      for (const { mcp } of servers) {
        const response = await createAuthFetch(mcp.url, { manager })(mcp.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          body: initialize,
        });
        assert.equal(response.status, 200);
        await response.body?.cancel();
      }
      assert.equal(browserOpens, 0);
      const made = w.exchanges.slice(before);
      assert.deepEqual(
        made.map((e) => e.audience),
        servers.map((s) => s.as.issuer),
      );
      assert.deepEqual(
        made.map((e) => e.resource),
        servers.map((s) => s.mcp.url),
      );
      const stored = await manager.store.listCredentials({});
      assert.equal(stored.length, 2);
      for (const credential of stored) assert.equal(credential.idp, w.idp.issuer);
    } finally {
      manager.close();
    }
  });

  it('replaces an expired access token with a fresh ID-JAG from the IdP session', async () => {
    const w = world as World;
    const mcp = firstServer();
    const as = firstAs();
    as.setAccessTokenTtl(2);
    const manager = managerWith(idpSource());
    try {
      const first = await manager.getAccessToken(mcp.url);
      const redeemedBefore = w.redeemed.length;
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      const second = await manager.getAccessToken(mcp.url);
      assert.notEqual(second, first);
      assert.equal(w.redeemed.length, redeemedBefore + 1, 'one new ID-JAG was redeemed');
      assert.equal(browserOpens, 0);
    } finally {
      as.setAccessTokenTtl(3600);
      manager.close();
    }
  });

  it('says the IdP session needs a sign-in when the IdP refuses the ID token', async () => {
    const mcp = firstServer();
    const manager = managerWith({ ...idpSource(), idToken: async () => `${idToken.slice(0, -4)}AAAA` });
    try {
      await assert.rejects(manager.getAccessToken(mcp.url), (error: unknown) => {
        assert.ok(isLatchkeyError(error));
        assert.equal(error.code, 'LOGIN_REQUIRED');
        assert.equal(error.next?.server, (world as World).idp.issuer);
        return true;
      });
      assert.equal(browserOpens, 0);
    } finally {
      manager.close();
    }
  });

  it('renews an expired IdP session by itself before the next exchange', async () => {
    const w = world as World;
    const mcp = firstServer();
    w.idp.setAccessTokenTtl(2);
    const store = createMemoryStore();
    const manager: CredentialManager = new CredentialManager({
      store,
      logger: silentLogger,
      acquire: createLoginHook({
        store,
        idp: storedIdpSession(() => manager),
        client: AS_CLIENT,
        openBrowser: async () => void browserOpens++,
        notify: () => undefined,
        timeoutMs: 5_000,
      }),
    });
    try {
      // The stored session, as `login --idp` leaves it: tokens plus the client at the IdP.
      const signIn = await obtainTokens(w.idp, {
        resource: 'https://idp.example/api',
        scope: 'openid',
        subject: 'alice',
        clientId: IDP_CLIENT,
      });
      assert.ok(signIn.response.refresh_token !== undefined);
      await store.putRegistration({
        issuer: w.idp.issuer,
        clientId: IDP_CLIENT,
        tokenEndpointAuthMethod: 'none',
        method: 'pre-registered',
        registeredAt: Date.now(),
      });
      await manager.saveAcquired(w.idp.issuer, {
        issuer: w.idp.issuer,
        clientId: IDP_CLIENT,
        response: signIn.response,
        requestedAt: signIn.requestedAt,
        resource: 'https://idp.example/api',
        idpSession: true,
      });
      const [session] = await store.listCredentials({ issuer: w.idp.issuer });
      await new Promise((resolve) => setTimeout(resolve, 2_500)); // the session's access token expired
      assert.ok(await manager.getAccessToken(mcp.url));
      const [renewed] = await store.listCredentials({ issuer: w.idp.issuer });
      assert.ok(session !== undefined && renewed !== undefined);
      assert.ok(renewed.generation > session.generation, 'the IdP session was refreshed');
      assert.notEqual(renewed.secrets.idToken, session.secrets.idToken, 'with a new ID token');
      assert.equal(browserOpens, 0);
    } finally {
      w.idp.setAccessTokenTtl(10);
      manager.close();
    }
  });

  it('uses the browser for a server whose AS does not accept ID-JAGs', async () => {
    const plainAs = await startAuthorizationServer();
    const plain = await startMcpServer({ authorizationServer: plainAs });
    const manager = managerWith(idpSource(), {});
    const exchanges = (world as World).exchanges.length;
    try {
      assert.ok(await manager.getAccessToken(plain.url));
      assert.equal(browserOpens, 1);
      assert.equal((world as World).exchanges.length, exchanges);
    } finally {
      manager.close();
      await plain.close();
      await plainAs.close();
    }
  });
});

describe('latchkey login --idp, status and logout --idp', () => {
  const BROWSER = fileURLToPath(new URL('../fixtures/headless-browser.ts', import.meta.url));
  let w: World;
  const servers: Array<{ as: TestAuthorizationServer; mcp: TestMcpServer }> = [];
  let home: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    w = await startWorld();
    for (let i = 0; i < 3; i++) {
      const as = await w.startResourceAs();
      servers.push({
        as,
        mcp: await startMcpServer({ authorizationServer: as, requiredScopes: ['mcp:tools'] }),
      });
    }
    home = await mkdtemp(join(tmpdir(), 'latchkey-idp-'));
    env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
    // The browser launcher reads the process's environment, as in test/cli/agreement.test.ts.
    process.env['BROWSER'] = BROWSER;
  });
  after(async () => {
    for (const { as, mcp } of servers) {
      await mcp.close();
      await as.close();
    }
    await w.idp.close();
    await rm(home, { recursive: true, force: true });
  });

  const cli = async (args: string[], extra: NodeJS.ProcessEnv = {}) => {
    const io = captureIO({ ...env, ...extra });
    const code = await main(args, io);
    return { code, out: io.stdout, err: io.stderr };
  };

  it('signs in to the IdP once; login and proxy reach three servers through it; logout --idp revokes all', async () => {
    const idpLogin = await cli(['login', '--idp', w.idp.issuer, '--client-id', IDP_CLIENT, '--browser']);
    assert.equal(idpLogin.code, ExitCode.OK, idpLogin.err);
    assert.match(idpLogin.err, /Logged in to the identity provider/);

    // The AS's client: a secret from the environment, as for any pre-registered client.
    const asClient = { LATCHKEY_CLIENT_SECRET: AS_CLIENT.clientSecret };
    const tokens: string[] = [];
    for (const { mcp } of servers.slice(0, 2)) {
      const exchanges = w.exchanges.length;
      const login = await cli(['login', mcp.url, '--client-id', AS_CLIENT.clientId], asClient);
      assert.equal(login.code, ExitCode.OK, login.err);
      assert.match(login.err, /through the identity provider/);
      assert.equal(w.exchanges.length, exchanges + 1, 'one ID-JAG exchange, no browser at the AS');
      const token = await cli(['token', mcp.url]);
      assert.equal(token.code, ExitCode.OK, token.err);
      tokens.push(token.out.trim());
      const status = await cli(['status', mcp.url]);
      assert.match(status.out, /ID-JAG from the identity provider/);
    }

    // The proxy finds the stored IdP session by itself: a third server, no login command.
    const third = servers[2];
    assert.ok(third !== undefined);
    const exchanges = w.exchanges.length;
    const host = spawnRawHost([third.mcp.url, '--client-id', AS_CLIENT.clientId], {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: String(env['LATCHKEY_KEY']),
      LATCHKEY_CLIENT_SECRET: AS_CLIENT.clientSecret,
    });
    try {
      const init = await host.request(
        'initialize',
        { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
        30_000,
      );
      assert.ok(init.result !== undefined, JSON.stringify(init));
      assert.equal(w.exchanges.length, exchanges + 1, 'the proxy used one ID-JAG');
    } finally {
      await host.close();
    }
    const proxied = await cli(['token', third.mcp.url]);
    assert.equal(proxied.code, ExitCode.OK, proxied.err);
    tokens.push(proxied.out.trim());

    const logout = await cli(['logout', '--idp', w.idp.issuer]);
    assert.equal(logout.code, ExitCode.OK, logout.err);
    for (const [i, { as }] of servers.entries()) {
      const info = await as.introspect(tokens[i] ?? '');
      assert.equal(info.active, false, 'the derived token was revoked at its AS');
    }
    const status = await cli(['status']);
    assert.doesNotMatch(status.out, /127\.0\.0\.1/);
  });
});
