/**
 * Third-party server #2: better-auth 1.6 with its `mcp` plugin, set up as its documentation
 * says and with the plugin's default options: SQLite (better-sqlite3, in memory, schema made
 * by better-auth's own migrations), email-and-password sign-in with one test user, served by
 * a node:http server on 127.0.0.1 through `toNodeHandler`.
 *
 * - `/api/auth/*`: better-auth (the AS: `/api/auth/mcp/{authorize,token,register}`);
 * - `/.well-known/oauth-authorization-server` and `/.well-known/oauth-protected-resource`:
 *   better-auth's `oAuthDiscoveryMetadata` / `oAuthProtectedResourceMetadata` helpers (the
 *   PRM's `resource` is the origin: that is what the helper writes);
 * - `/login`: the plugin's `loginPage`, a small form that signs in with better-auth's
 *   `/sign-in/email` and then resumes the authorization request it was sent with;
 * - `/mcp`: an SDK McpServer (harness tools) behind better-auth's `withMcpAuth`.
 *
 * Observations for the tests (better-auth keeps no counters): every request to the token
 * endpoint with its status (`counters`), and the token rows in its database.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

import Database from 'better-sqlite3';
import { betterAuth } from 'better-auth';
import { getMigrations } from 'better-auth/db/migration';
import { toNodeHandler } from 'better-auth/node';
import {
  mcp,
  oAuthDiscoveryMetadata,
  oAuthProtectedResourceMetadata,
  withMcpAuth,
} from 'better-auth/plugins';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';

import { Counters } from '../../src/demo/counters.js';
import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';
import { buildServer } from '../../src/demo/mcp-server.js';

export interface BetterAuthServer {
  /** The MCP endpoint, http://127.0.0.1:PORT/mcp. */
  readonly url: string;
  /** The origin: better-auth's issuer and the PRM's `resource`. */
  readonly origin: string;
  readonly user: { email: string; password: string; name: string };
  /** `token` → HTTP status of each token-endpoint response. */
  readonly counters: Counters;
  /** Delete every registered OAuth client (rows of `oauthApplication`), as a reset AS would. */
  forgetClients(): void;
  registeredClients(): number;
  /** Move every access token's expiry into the past, as their lifetime passing would. */
  expireAccessTokens(): void;
  /** Token rows (one per login or refresh: better-auth never deletes one). */
  tokenRows(): number;
  /** The test user's id (the `sub` the MCP server sees). */
  userId(): string;
  close(): Promise<void>;
}

const LOGIN_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h2>Sign in</h2>
<form id="f">
  <input name="email" type="email" autocomplete="username" required>
  <input name="password" type="password" autocomplete="current-password" required>
  <button type="submit">Sign in</button>
</form>
<p id="error"></p>
<script>
// Sign in with better-auth, then resume the authorization request this page was sent with
// (better-auth passes its query string along).
document.getElementById('f').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch('/api/auth/sign-in/email', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: form.get('email'), password: form.get('password') }),
    redirect: 'manual',
  });
  if (response.type !== 'opaqueredirect' && !response.ok) {
    document.getElementById('error').textContent = 'Sign-in failed (' + response.status + ')';
    return;
  }
  location.href = '/api/auth/mcp/authorize' + location.search;
});
</script>
</body></html>`;

export async function startBetterAuthServer(): Promise<BetterAuthServer> {
  const server = createServer();
  const sockets = trackSockets(server);
  const origin = await listenOnLoopback(server);
  const db = new Database(':memory:');
  const auth = betterAuth({
    baseURL: origin,
    secret: randomBytes(32).toString('base64url'),
    database: db,
    emailAndPassword: { enabled: true },
    plugins: [mcp({ loginPage: '/login' })],
    logger: { disabled: true },
  });
  const { runMigrations } = await getMigrations(auth.options);
  await runMigrations();
  const user = { email: 'tester@example.com', password: 'correct-horse-battery', name: 'Test User' };
  await auth.api.signUpEmail({ body: user });

  const counters = new Counters();
  const authHandler = toNodeHandler(auth);
  const discovery = toNodeHandler(oAuthDiscoveryMetadata(auth));
  const resourceMetadata = toNodeHandler(oAuthProtectedResourceMetadata(auth));
  const mcpHandler = toNodeHandler(
    withMcpAuth(auth, async (request, session) => {
      const mcpServer = buildServer();
      const transport = new WebStandardStreamableHTTPServerTransport({});
      await mcpServer.connect(transport);
      return transport.handleRequest(request, {
        authInfo: {
          token: session.accessToken,
          clientId: session.clientId,
          scopes: session.scopes.split(' '),
          extra: { sub: session.userId },
        },
      });
    }),
  );

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', origin).pathname;
    if (path === '/api/auth/mcp/token') {
      res.on('finish', () => counters.record('token', String(res.statusCode)));
    }
    if (path.startsWith('/api/auth/')) return void authHandler(req, res);
    if (path === '/.well-known/oauth-authorization-server') return void discovery(req, res);
    if (path === '/.well-known/oauth-protected-resource') return void resourceMetadata(req, res);
    if (path === '/mcp') return void mcpHandler(req, res);
    if (path === '/login') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(LOGIN_PAGE);
      return;
    }
    res.writeHead(404).end();
  });

  const count = (table: string): number =>
    (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
  return {
    url: `${origin}/mcp`,
    origin,
    user,
    counters,
    forgetClients: () => void db.prepare('DELETE FROM oauthApplication').run(),
    registeredClients: () => count('oauthApplication'),
    expireAccessTokens: () =>
      void db.prepare('UPDATE oauthAccessToken SET accessTokenExpiresAt = ?').run(Date.now() - 60_000),
    tokenRows: () => count('oauthAccessToken'),
    userId: () => (db.prepare('SELECT id FROM user').get() as { id: string }).id,
    async close() {
      await closeServer(server, sockets);
      db.close();
    },
  };
}
