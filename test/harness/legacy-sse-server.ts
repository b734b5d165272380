/**
 * A protected MCP server that speaks only the legacy HTTP+SSE transport (MCP 2024-11-05),
 * built on the official SDK's `SSEServerTransport`: `GET /sse` opens the stream, whose first
 * event names the POST endpoint (`/messages?sessionId=...`); requests are POSTed there and
 * answered on the stream. A session lives exactly as long as its stream.
 *
 * It is protected like the Streamable HTTP harness server (mcp-server.ts): bearer tokens the
 * test AS issued for this resource (`http://127.0.0.1:PORT/sse`), checked by RFC 7662
 * introspection, RFC 9728 protected-resource metadata, and RFC 6750 401/403 challenges. It
 * serves the same tools (`echo`, `whoami`).
 *
 * A client that tries Streamable HTTP first (POST to the stream URL) is refused with 405, as
 * an SSE-only server does, so a client that falls back can be told apart from one that
 * never tried.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';

import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';

import type { TestAuthorizationServer } from './authorization-server.js';
import { Counters } from '../../src/demo/counters.js';
import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';
import { buildServer } from '../../src/demo/mcp-server.js';
import { sendJson } from '../../src/demo/reply.js';
import { dropSessions } from './mcp-server.js';

export interface LegacySseMcpServerOptions {
  /** Issues and introspects the tokens; the server registers its URL there as a resource. */
  authorizationServer: Pick<TestAuthorizationServer, 'issuer' | 'scope' | 'introspect' | 'addResource'>;
  /** Path of the SSE stream (the resource URL). Default '/sse'. */
  ssePath?: string;
  /** Path of the POST endpoint the stream names. Default '/messages'. */
  messagesPath?: string;
  /** Scopes every request needs. Default: the AS's resource scopes. */
  requiredScopes?: readonly string[];
  /**
   * The status a POST to the stream URL (a Streamable HTTP attempt) gets. Default 405, as a
   * server with only a GET route and a method check answers; 404 is what a bare router says.
   */
  streamablePostStatus?: 404 | 405;
  /** Serve through a proxy, as mcp-server.ts does: the resource URL becomes the proxy's. */
  frontedBy?: { readonly origin: string; setTarget(origin: string): void };
  /** Listen on this loopback port instead of an ephemeral one. */
  port?: number;
}

export interface TestLegacySseMcpServer {
  /** The stream URL, e.g. http://127.0.0.1:PORT/sse: the RFC 8707 resource and token audience. */
  readonly url: string;
  /** Where the protected-resource metadata is served (path-inserted form, RFC 9728 3.1). */
  readonly resourceMetadataUrl: string;
  /** Where the server really listens (bypasses a front proxy). */
  readonly directUrl: string;
  /**
   * `auth`: missing | invalid_token | insufficient_scope | ok (per request);
   * `rpc`: JSON-RPC method names received on the POST endpoint; `tool`: tool names called;
   * `session`: created | closed | not-found | dropped;
   * `http`: `GET /sse` (streams asked for), `POST /messages` (messages accepted for a live
   * session), `POST /sse refused` (Streamable HTTP attempts turned away);
   * `refused`: JSON-RPC method names in those refused Streamable HTTP attempts.
   */
  readonly counters: Counters;
  /** Number of open SSE streams (sessions). */
  readonly sessionCount: number;
  /** End every SSE stream, as a restarted server would: their session ids then get 404. */
  dropAllSessions(): Promise<void>;
  close(): Promise<void>;
}

export async function startLegacySseMcpServer(
  options: LegacySseMcpServerOptions,
): Promise<TestLegacySseMcpServer> {
  const as = options.authorizationServer;
  const ssePath = options.ssePath ?? '/sse';
  const messagesPath = options.messagesPath ?? '/messages';
  const requiredScopes = [...(options.requiredScopes ?? as.scope.split(' ').filter(Boolean))];
  const streamablePostStatus = options.streamablePostStatus ?? 405;
  const counters = new Counters();
  const sessions = new Map<string, SSEServerTransport>();

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(error) });
      else res.destroy();
    });
  });
  const sockets = trackSockets(server);
  const directUrl = await listenOnLoopback(server, options.port);
  const origin = options.frontedBy?.origin ?? directUrl;
  const url = `${origin}${ssePath}`;
  const resourceMetadataUrl = `${origin}/.well-known/oauth-protected-resource${ssePath}`;
  as.addResource(url);
  options.frontedBy?.setTarget(directUrl);

  const metadata = {
    resource: url,
    authorization_servers: [as.issuer],
    scopes_supported: requiredScopes,
    bearer_methods_supported: ['header'],
    resource_name: 'latchkey test MCP server (HTTP+SSE)',
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestUrl = new URL(req.url ?? '/', 'http://mcp.invalid');
    const pathname = requestUrl.pathname;
    if (
      req.method === 'GET' &&
      (pathname === `/.well-known/oauth-protected-resource${ssePath}` ||
        pathname === '/.well-known/oauth-protected-resource')
    ) {
      sendJson(res, 200, metadata);
      return;
    }
    if (pathname !== ssePath && pathname !== messagesPath) {
      sendJson(res, 404, { error: 'not_found' });
      return;
    }

    const auth = await authenticate(req, res);
    if (auth === undefined) return;

    if (pathname === ssePath) {
      if (req.method !== 'GET') {
        counters.record('http', `${req.method ?? 'POST'} ${ssePath} refused`);
        const body = await readJson(req, res);
        if (body === INVALID) return;
        for (const message of Array.isArray(body) ? body : [body]) {
          const method = (message as { method?: unknown } | null)?.method;
          if (typeof method === 'string') counters.record('refused', method);
        }
        res.setHeader('allow', 'GET');
        sendJson(res, streamablePostStatus, { error: 'method_not_allowed' });
        return;
      }
      counters.record('http', `GET ${ssePath}`);
      await openSession(res);
      return;
    }

    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      sendJson(res, 405, { error: 'method_not_allowed' });
      return;
    }
    const sessionId = requestUrl.searchParams.get('sessionId');
    if (sessionId === null) {
      sendText(res, 400, 'Missing sessionId parameter');
      return;
    }
    const body = await readJson(req, res);
    if (body === INVALID) return;
    const transport = sessions.get(sessionId);
    if (transport === undefined) {
      // As the SDK's own SSE example server answers a session it does not know.
      counters.record('session', 'not-found');
      sendText(res, 404, 'Session not found');
      return;
    }
    counters.record('http', `POST ${messagesPath}`);
    for (const message of Array.isArray(body) ? body : [body]) recordRpc(message);
    await transport.handlePostMessage(Object.assign(req, { auth }), res, body);
  }

  /** One SDK server and SSE transport per stream, as the SDK's SSE example does. */
  async function openSession(res: ServerResponse): Promise<void> {
    const transport = new SSEServerTransport(messagesPath, res);
    const id = transport.sessionId;
    sessions.set(id, transport);
    counters.record('session', 'created');
    // Set before connect(): the SDK server chains its own handler after this one.
    transport.onclose = () => {
      if (sessions.delete(id)) counters.record('session', 'closed');
    };
    await buildServer().connect(transport);
  }

  /** Bearer check by introspection. Answers the rejection itself and returns undefined. */
  async function authenticate(req: IncomingMessage, res: ServerResponse): Promise<AuthInfo | undefined> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header(req, 'authorization') ?? '');
    if (match?.[1] === undefined) {
      counters.record('auth', 'missing');
      challenge(res, 401, {});
      return undefined;
    }
    const token = match[1];
    const info = await as.introspect(token);
    const audiences = info.aud === undefined ? [] : Array.isArray(info.aud) ? info.aud : [info.aud];
    if (!info.active || !audiences.includes(url)) {
      counters.record('auth', 'invalid_token');
      const description = info.active ? 'token audience is not this server' : 'token is not active';
      challenge(res, 401, { error: 'invalid_token', error_description: description });
      return undefined;
    }
    const scopes = (info.scope ?? '').split(' ').filter(Boolean);
    const missing = requiredScopes.filter((s) => !scopes.includes(s));
    if (missing.length > 0) {
      counters.record('auth', 'insufficient_scope');
      challenge(res, 403, {
        error: 'insufficient_scope',
        error_description: `missing scope ${missing.join(' ')}`,
      });
      return undefined;
    }
    counters.record('auth', 'ok');
    return {
      token,
      clientId: info.client_id ?? '',
      scopes,
      ...(info.exp === undefined ? {} : { expiresAt: info.exp }),
      resource: new URL(url),
      extra: { sub: info.sub },
    };
  }

  function challenge(
    res: ServerResponse,
    status: 401 | 403,
    error: { error?: string; error_description?: string },
  ): void {
    const params = [`resource_metadata="${resourceMetadataUrl}"`, `scope="${requiredScopes.join(' ')}"`];
    if (error.error !== undefined) params.unshift(`error="${error.error}"`);
    if (error.error_description !== undefined) params.push(`error_description="${error.error_description}"`);
    res.setHeader('www-authenticate', `Bearer ${params.join(', ')}`);
    sendJson(res, status, error.error === undefined ? { error: 'unauthorized' } : error);
  }

  function recordRpc(message: unknown): void {
    if (typeof message !== 'object' || message === null) return;
    const { method, params } = message as { method?: unknown; params?: { name?: unknown } };
    if (typeof method !== 'string') return;
    counters.record('rpc', method);
    if (method === 'tools/call' && typeof params?.name === 'string') counters.record('tool', params.name);
  }

  return {
    url,
    resourceMetadataUrl,
    directUrl,
    counters,
    get sessionCount() {
      return sessions.size;
    },
    dropAllSessions: () => dropSessions(sessions, counters),
    async close() {
      const transports = [...sessions.values()];
      sessions.clear();
      await Promise.all(transports.map((t) => t.close().catch(() => undefined)));
      await closeServer(server, sockets);
    },
  };
}

const INVALID = Symbol('invalid body');

async function readJson(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  if (chunks.length === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    sendJson(res, 400, { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null });
    return INVALID;
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain' }).end(text);
}
