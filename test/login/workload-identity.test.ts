// Workload identity federation (SEP-1933, RFC 7523 §2.1), end to end against a real HTTP
// server that is both the MCP server (with PRM) and its AS: the AS verifies the workload
// JWT's RS256 signature, audience and expiry itself, like auth/wif-jwt-bearer. The JWT comes
// from a token file, as a Kubernetes projected service-account token would. Nothing is mocked.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, randomBytes, randomUUID, sign, verify } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';
import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { createLoginHook } from '../../src/login/login.js';
import { createAuthFetch } from '../../src/mcp/auth-fetch.js';
import { JWT_BEARER_GRANT } from '../../src/oauth/jwt-bearer.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { captureIO } from '../support/cli-io.js';
import { spawnRawHost } from '../support/raw-host.js';

const b64url = (value: string | Buffer): string => Buffer.from(value).toString('base64url');

/** A platform-issued workload JWT (RS256), as Kubernetes or a CI system would mint it. */
function workloadJwt(key: KeyObject, audience: string, expiresIn = 600): string {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const payload = b64url(
    JSON.stringify({
      iss: 'https://platform.example',
      sub: 'system:serviceaccount:prod:agent',
      aud: audience,
      iat: now,
      exp: now + expiresIn,
      jti: randomUUID(),
    }),
  );
  return `${header}.${payload}.${b64url(sign('sha256', Buffer.from(`${header}.${payload}`), key))}`;
}

interface TokenRequest {
  grantType: string | null;
  assertion: string | null;
  clientId: string | null;
  resource: string | null;
  scope: string | null;
}

interface WifServer {
  url: string;
  origin: string;
  tokenRequests: TokenRequest[];
  /** Answer the next token requests with this OAuth error instead. */
  refuseWith: string | undefined;
  /** Forget every access token issued (the server then answers 401). */
  revokeAll(): void;
  /** `expires_in` of the access tokens issued. Default 3600. */
  expiresIn: number;
  seen: string[];
  close(): Promise<void>;
}

async function startWifServer(publicKey: KeyObject): Promise<WifServer> {
  const tokens = new Set<string>();
  const state: WifServer = {
    url: '',
    origin: '',
    tokenRequests: [],
    refuseWith: undefined,
    revokeAll: () => tokens.clear(),
    expiresIn: 3600,
    seen: [],
    close: async () => undefined,
  };
  const json = (res: ServerResponse, status: number, value: unknown): void =>
    void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const route = `${req.method} ${req.url}`;
      state.seen.push(route);
      const { origin } = state;
      if (route === 'GET /.well-known/oauth-protected-resource/mcp') {
        return json(res, 200, { resource: state.url, authorization_servers: [origin] });
      }
      if (route === 'GET /.well-known/oauth-authorization-server') {
        return json(res, 200, {
          issuer: origin,
          token_endpoint: `${origin}/token`,
          grant_types_supported: [JWT_BEARER_GRANT],
          token_endpoint_auth_methods_supported: ['none'],
          response_types_supported: ['code'],
        });
      }
      if (route === 'POST /token') {
        const form = new URLSearchParams(body);
        const request: TokenRequest = {
          grantType: form.get('grant_type'),
          assertion: form.get('assertion'),
          clientId: form.get('client_id'),
          resource: form.get('resource'),
          scope: form.get('scope'),
        };
        state.tokenRequests.push(request);
        if (state.refuseWith !== undefined) return json(res, 400, { error: state.refuseWith });
        if (request.grantType !== JWT_BEARER_GRANT)
          return json(res, 400, { error: 'unsupported_grant_type' });
        if (!validJwt(request.assertion ?? '', publicKey, origin))
          return json(res, 400, { error: 'invalid_grant' });
        const token = randomUUID();
        tokens.add(token);
        return json(res, 200, { access_token: token, token_type: 'Bearer', expires_in: state.expiresIn });
      }
      if (route === 'POST /mcp') {
        const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        if (bearer === undefined || !tokens.has(bearer)) {
          res.writeHead(401, {
            'www-authenticate': `Bearer resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`,
          });
          res.end();
          return;
        }
        return answerMcp(res, body);
      }
      json(res, 404, { error: 'not_found' });
    });
  });
  const sockets = trackSockets(server);
  state.origin = await listenOnLoopback(server, 0);
  state.url = `${state.origin}/mcp`;
  state.close = () => closeServer(server, sockets);
  return state;
}

/** A minimal stateless MCP server (2025-06-18): initialize, notifications, one tool. */
function answerMcp(res: ServerResponse, body: string): void {
  const message = JSON.parse(body || '{}') as { id?: number | string; method?: string };
  if (message.id === undefined) {
    res.writeHead(202).end();
    return;
  }
  const result =
    message.method === 'initialize'
      ? {
          protocolVersion: '2025-06-18',
          capabilities: { tools: {} },
          serverInfo: { name: 'wif', version: '1' },
        }
      : { tools: [{ name: 'whoami', inputSchema: { type: 'object' } }] };
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
}

/** RS256 signature, audience (the issuer, with or without '/'), and expiry. */
function validJwt(jwt: string, key: KeyObject, issuer: string): boolean {
  const [header, payload, signature] = jwt.split('.');
  if (header === undefined || payload === undefined || signature === undefined) return false;
  const signed = Buffer.from(`${header}.${payload}`);
  if (!verify('sha256', signed, key, Buffer.from(signature, 'base64url'))) return false;
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as {
    aud?: string;
    exp?: number;
  };
  const audienceOk = claims.aud === issuer || claims.aud === `${issuer}/`;
  return audienceOk && typeof claims.exp === 'number' && claims.exp * 1000 > Date.now();
}

describe('workload identity federation: the JWT bearer grant from a token file', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  let server: WifServer;
  let dir: string;
  let tokenFile: string;
  let manager: CredentialManager;

  before(async () => {
    server = await startWifServer(publicKey);
    dir = await mkdtemp(join(tmpdir(), 'latchkey-wif-test-'));
    tokenFile = join(dir, 'token');
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    server.tokenRequests.length = 0;
    server.seen.length = 0;
    server.refuseWith = undefined;
    server.expiresIn = 3600;
    server.revokeAll();
    manager?.close();
    const store = createMemoryStore();
    manager = new CredentialManager({
      store,
      logger: silentLogger,
      acquire: createLoginHook({
        store,
        flow: 'workload-identity',
        client: { clientId: 'workload-agent', workloadTokenFile: tokenFile },
        notify: () => undefined,
      }),
    });
  });
  after(() => manager.close());

  async function callMcp(): Promise<number> {
    const authFetch = createAuthFetch(server.url, { manager });
    const response = await authFetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    await response.body?.cancel();
    return response.status;
  }

  it('one token request with the file JWT unchanged, the client id, the resource, and no scope', async () => {
    const jwt = workloadJwt(privateKey, server.origin);
    await writeFile(tokenFile, `${jwt}\n`, { mode: 0o600 });
    assert.equal(await callMcp(), 200);
    assert.deepEqual(server.tokenRequests, [
      {
        grantType: JWT_BEARER_GRANT,
        assertion: jwt,
        clientId: 'workload-agent',
        resource: server.url,
        scope: null,
      },
    ]);
    assert.ok(!server.seen.some((r) => r.includes('register')), 'nothing is registered');
  });

  it('the file is read again for the next token: a rotated JWT is the one sent', async () => {
    const first = workloadJwt(privateKey, server.origin);
    await writeFile(tokenFile, first);
    assert.equal(await callMcp(), 200);
    const rotated = workloadJwt(privateKey, server.origin);
    await writeFile(tokenFile, rotated);
    server.revokeAll(); // the access token is gone; the server answers 401
    assert.equal(await callMcp(), 200);
    assert.deepEqual(
      server.tokenRequests.map((r) => r.assertion),
      [first, rotated],
    );
  });

  for (const error of ['invalid_grant', 'invalid_scope', 'unauthorized_client']) {
    it(`${error}: surfaced as CLIENT_REJECTED after one request, never retried, the JWT never shown`, async () => {
      const jwt = workloadJwt(privateKey, server.origin);
      await writeFile(tokenFile, jwt);
      server.refuseWith = error;
      const failure = await manager.getAccessToken(server.url).then(
        () => assert.fail('the grant was refused'),
        (e: unknown) => e,
      );
      assert.ok(isLatchkeyError(failure), String(failure));
      assert.equal(failure.code, 'CLIENT_REJECTED');
      assert.equal(failure.retryable, false);
      assert.match(failure.message, new RegExp(`refused the workload identity token \\(${error}`));
      assert.equal(server.tokenRequests.length, 1, 'one token request only');
      assert.ok(!JSON.stringify({ m: failure.message, n: failure.next }).includes(jwt));
    });
  }

  it('a JWT for another audience is refused by the AS', async () => {
    await writeFile(tokenFile, workloadJwt(privateKey, 'https://wrong.example'));
    const refused = await manager.getAccessToken(server.url).catch((e: unknown) => e);
    assert.ok(isLatchkeyError(refused) && refused.code === 'CLIENT_REJECTED', String(refused));
    assert.equal(server.tokenRequests.length, 1);
  });

  it('a missing token file is a configuration error naming it, and no token request is made', async () => {
    await rm(tokenFile, { force: true });
    const missing = await manager.getAccessToken(server.url).catch((e: unknown) => e);
    assert.ok(isLatchkeyError(missing), String(missing));
    assert.equal(missing.code, 'INVALID_INPUT');
    assert.match(missing.message, /workload token file .*cannot be read \(ENOENT\)/);
    assert.equal(server.tokenRequests.length, 0);
  });

  it('`latchkey login --workload-token-file --client-id`: the CLI takes the flow, `token` prints what it got', async () => {
    const jwt = workloadJwt(privateKey, server.origin);
    await writeFile(tokenFile, jwt, { mode: 0o600 });
    const env = { LATCHKEY_HOME: join(dir, 'home'), LATCHKEY_KEY: randomBytes(32).toString('base64') };
    const login = captureIO(env);
    const args = ['login', server.url, '--workload-token-file', tokenFile, '--client-id', 'workload-cli'];
    assert.equal(await main(args, login), ExitCode.OK, login.stderr);
    assert.deepEqual(
      server.tokenRequests.map((r) => [r.grantType, r.assertion, r.clientId]),
      [[JWT_BEARER_GRANT, jwt, 'workload-cli']],
    );
    assert.ok(!login.stderr.includes(jwt), 'the workload JWT is never printed');
    assert.match(login.stderr, /Logged in to /);
    assert.doesNotMatch(login.stderr, /issued no refresh token/, 'no refresh token is normal for this grant');
    const token = captureIO(env);
    assert.equal(await main(['token', server.url], token), ExitCode.OK, token.stderr);
    const accepted = await fetch(server.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token.stdout.trim()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    await accepted.body?.cancel();
    assert.equal(accepted.status, 200, 'the printed token is the one the AS issued');
  });

  it('`latchkey proxy --workload-token-file`: a host gets tools with no login, and a rotated JWT after expiry', async () => {
    // Access tokens that expire at once: every later request needs a new one, from the file.
    server.expiresIn = 1;
    const first = workloadJwt(privateKey, server.origin);
    await writeFile(tokenFile, first, { mode: 0o600 });
    const home = join(dir, 'proxy-home');
    const host = spawnRawHost(
      [server.url, '--workload-token-file', tokenFile, '--client-id', 'workload-proxy'],
      {
        LATCHKEY_HOME: home,
        LATCHKEY_KEY: randomBytes(32).toString('base64'),
      },
    );
    try {
      const init = await host.request(
        'initialize',
        { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
        30_000,
      );
      assert.ok(init.result !== undefined, JSON.stringify(init));
      host.notify('notifications/initialized');
      const listed = await host.request('tools/list', {}, 30_000);
      assert.deepEqual(listed.result, { tools: [{ name: 'whoami', inputSchema: { type: 'object' } }] });

      const before = server.tokenRequests.map((r) => r.assertion);
      assert.ok(
        before.length >= 1 && before.every((a) => a === first),
        'the first JWT until the file changes',
      );

      const rotated = workloadJwt(privateKey, server.origin);
      await writeFile(tokenFile, rotated);
      await new Promise((resolve) => setTimeout(resolve, 1_100)); // the last token has expired
      const again = await host.request('tools/list', {}, 30_000);
      assert.ok(again.result !== undefined, JSON.stringify(again));
      assert.equal(
        server.tokenRequests.at(-1)?.assertion,
        rotated,
        'the expired token was replaced from the file',
      );
      assert.ok(!host.stderr().includes(first) && !host.stderr().includes(rotated), 'no JWT in the log');
      assert.deepEqual(host.junk, []);
    } finally {
      await host.close();
    }
  });
});
