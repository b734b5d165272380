// 2025-03-26 servers, end to end: a real HTTP server shaped like the conformance scenarios
// auth/2025-03-26-oauth-endpoint-fallback (no metadata at all: /authorize, /token and
// /register on the server's origin) and auth/2025-03-26-oauth-metadata-backcompat (root
// metadata whose issuer is <origin>/oauth). It verifies PKCE S256 itself, so a login that
// skipped or broke PKCE fails. The user sees a warning naming the risk; nothing is mocked.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { after, describe, it } from 'node:test';

import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { createLoginHook } from '../../src/login/login.js';
import { createAuthFetch } from '../../src/mcp/auth-fetch.js';
import { createMemoryStore } from '../../src/store/memory.js';

interface LegacyServer {
  url: string;
  origin: string;
  /** Requests as `METHOD path`, in order. */
  seen: string[];
  close(): Promise<void>;
}

/** `prefix` '' serves no metadata (default endpoints); '/oauth' serves root metadata for it. */
async function startLegacyServer(prefix: '' | '/oauth'): Promise<LegacyServer> {
  const seen: string[] = [];
  const codes = new Map<string, string>();
  const tokens = new Set<string>();
  let origin = '';
  const server = createServer((req, res) => {
    void handle(req, res).catch((error: unknown) => res.writeHead(500).end(String(error)));
  });
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', origin);
    seen.push(`${req.method} ${url.pathname}`);
    const body = await readBody(req);
    const route = `${req.method} ${url.pathname}`;
    if (prefix !== '' && route === 'GET /.well-known/oauth-authorization-server') {
      return json(res, 200, {
        issuer: `${origin}${prefix}`,
        authorization_endpoint: `${origin}${prefix}/authorize`,
        token_endpoint: `${origin}${prefix}/token`,
        registration_endpoint: `${origin}${prefix}/register`,
        response_types_supported: ['code'],
        code_challenge_methods_supported: ['S256'],
      });
    }
    if (route === `GET ${prefix}/authorize`) {
      const q = url.searchParams;
      const code = randomBytes(8).toString('hex');
      if (q.get('code_challenge_method') === 'S256') codes.set(code, q.get('code_challenge') ?? '');
      const back = new URL(q.get('redirect_uri') ?? '');
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state') ?? '');
      res.writeHead(302, { location: back.href }).end();
      return;
    }
    if (route === `POST ${prefix}/register`) {
      return json(res, 201, { client_id: 'legacy-client', redirect_uris: JSON.parse(body).redirect_uris });
    }
    if (route === `POST ${prefix}/token`) {
      const form = new URLSearchParams(body);
      const challenge = codes.get(form.get('code') ?? '');
      const verifier = form.get('code_verifier') ?? '';
      const digest = createHash('sha256').update(verifier).digest('base64url');
      if (challenge === undefined || digest !== challenge) return json(res, 400, { error: 'invalid_grant' });
      const token = randomBytes(16).toString('hex');
      tokens.add(token);
      return json(res, 200, { access_token: token, token_type: 'Bearer', expires_in: 3600 });
    }
    if (route === 'POST /mcp') {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (bearer === undefined || !tokens.has(bearer)) {
        res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
        return;
      }
      const { id } = JSON.parse(body) as { id: number };
      return json(res, 200, { jsonrpc: '2.0', id, result: { tools: [] } });
    }
    json(res, 404, { error: 'not_found' });
  }
  const sockets = trackSockets(server);
  origin = await listenOnLoopback(server, 0);
  return { url: `${origin}/mcp`, origin, seen, close: () => closeServer(server, sockets) };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
}

/** The browser stand-in: the authorization endpoint redirects at once; deliver the redirect. */
async function followRedirect(url: string): Promise<void> {
  const response = await fetch(url, { redirect: 'manual' });
  const location = response.headers.get('location');
  assert.ok(location !== null, `the authorization endpoint answered ${response.status}`);
  void fetch(location).then((r) => r.body?.cancel());
}

async function loginAndCall(server: LegacyServer): Promise<{ status: number; warnings: string[] }> {
  const store = createMemoryStore();
  const warnings: string[] = [];
  const manager = new CredentialManager({
    store,
    logger: silentLogger,
    acquire: createLoginHook({
      store,
      flow: 'browser',
      openBrowser: followRedirect,
      notify: () => undefined,
      warn: (text) => warnings.push(text),
      timeoutMs: 10_000,
    }),
  });
  try {
    const authFetch = createAuthFetch(server.url, { manager });
    const response = await authFetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    await response.body?.cancel();
    return { status: response.status, warnings };
  } finally {
    manager.close();
  }
}

describe('2025-03-26 servers (no protected resource metadata)', () => {
  const servers: LegacyServer[] = [];
  after(() => Promise.all(servers.map((s) => s.close())));

  it('no metadata at all: logs in at /authorize, /token, /register with PKCE S256, and warns', async () => {
    const server = await startLegacyServer('');
    servers.push(server);
    const { status, warnings } = await loginAndCall(server);
    assert.equal(status, 200);
    for (const route of ['POST /register', 'GET /authorize', 'POST /token']) {
      assert.ok(server.seen.includes(route), `${route} was used: ${server.seen.join(', ')}`);
    }
    assert.equal(warnings.length, 1);
    assert.ok(warnings[0]?.includes(server.url), 'the warning names the server');
    assert.match(warnings[0] ?? '', /default endpoints.*Risk:/);
  });

  it('root metadata naming issuer <origin>/oauth: its endpoints are used, and it warns', async () => {
    const server = await startLegacyServer('/oauth');
    servers.push(server);
    const { status, warnings } = await loginAndCall(server);
    assert.equal(status, 200);
    for (const route of ['POST /oauth/register', 'GET /oauth/authorize', 'POST /oauth/token']) {
      assert.ok(server.seen.includes(route), `${route} was used: ${server.seen.join(', ')}`);
    }
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /names issuer ".*\/oauth".*Risk: the RFC 8414 §3\.3 issuer check/);
  });
});
