/**
 * The demo's protected MCP server, as the spec describes one (2025-06-18 / 2025-11-25 authorization):
 * built on the official SDK (McpServer + StreamableHTTPServerTransport, stateful sessions),
 * accepting only bearer tokens the test AS issued for *this* resource, checked by RFC 7662
 * introspection, and advertising its AS through RFC 9728 protected-resource metadata.
 *
 * Rejections follow RFC 6750 / RFC 9728: 401 with a `WWW-Authenticate: Bearer` challenge
 * naming the metadata URL (plus `error="invalid_token"` when a token was sent), and 403
 * `insufficient_scope` naming the scopes needed.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

import type { AuthorizationServer } from './authorization-server.js';
import { Counters } from './counters.js';
import { authenticate, type BearerCheck, header, protectedResource } from './bearer-check.js';
import { DPoPCheck } from './dpop-check.js';
import { closeServer, listenOnLoopback, trackSockets } from './listen.js';
import { sendJson } from './reply.js';

/**
 * Answers an authenticated request (already parsed, already counted) before the SDK's
 * session handling sees it; returns false to pass it on. The tests' 2026-07-28 face is one.
 */
export type RequestInterceptor = (
  req: IncomingMessage,
  res: ServerResponse,
  body: unknown,
  auth: AuthInfo,
) => boolean;

export interface McpServerOptions {
  /** Issues and introspects the tokens; the server registers its URL there as a resource. */
  authorizationServer: Pick<AuthorizationServer, 'issuer' | 'scope' | 'introspect' | 'addResource'>;
  /** Endpoint path. Default '/mcp'. */
  path?: string;
  /** Scopes every request needs. Default: the AS's resource scopes. */
  requiredScopes?: readonly string[];
  /**
   * Serve through a proxy: the resource URL (and token audience) becomes the proxy's, and the
   * proxy is pointed at this server. Use a different proxy than the AS's.
   */
  frontedBy?: { readonly origin: string; setTarget(origin: string): void };
  /**
   * Listen on this loopback port instead of an ephemeral one: a test can close the server and
   * start a new one where it was, as a restart would (same URL, no sessions).
   */
  port?: number;
  /** Where to count what the server saw. Default: a new one. */
  counters?: Counters;
  /** Sees each authenticated request first (see RequestInterceptor). */
  intercept?: RequestInterceptor;
  /**
   * Accept DPoP-bound tokens with their proofs (dpop-check.ts), challenging with the `DPoP`
   * scheme; `'nonce'` also requires this server's nonce in every proof. Default: bearer only.
   */
  dpop?: boolean | 'nonce';
  /**
   * The live sessions by id. Default: a new map. Pass one to count or end sessions from
   * outside, as a restarted server would forget them.
   */
  sessions?: Map<string, StreamableHTTPServerTransport>;
}

export interface McpServerHandle {
  /** Canonical resource URI, e.g. http://127.0.0.1:PORT/mcp: the RFC 8707 resource and token audience. */
  readonly url: string;
  /** Where the protected-resource metadata is served (path-inserted form, RFC 9728 3.1). */
  readonly resourceMetadataUrl: string;
  /** Where the server really listens (bypasses a front proxy). */
  readonly directUrl: string;
  /**
   * `auth`: missing | invalid_token | insufficient_scope | ok (per request);
   * `rpc`: JSON-RPC method names received; `tool`: tool names called;
   * `session`: created | closed | not-found; `dpop`: ok | invalid_dpop_proof | use_dpop_nonce.
   */
  readonly counters: Counters;
  close(): Promise<void>;
}

/** What serving a request needs; one per started server. */
interface ServerState {
  readonly path: string;
  readonly check: BearerCheck;
  readonly sessions: Map<string, StreamableHTTPServerTransport>;
  readonly intercept: RequestInterceptor | undefined;
}

export async function startMcpServer(options: McpServerOptions): Promise<McpServerHandle> {
  const as = options.authorizationServer;
  const path = options.path ?? '/mcp';
  const requiredScopes = [...(options.requiredScopes ?? as.scope.split(' ').filter(Boolean))];
  const counters = options.counters ?? new Counters();
  const sessions = options.sessions ?? new Map<string, StreamableHTTPServerTransport>();

  // Listen first: the resource URL (and so the token audience) contains the bound port.
  const server = createServer();
  const sockets = trackSockets(server);
  const directUrl = await listenOnLoopback(server, options.port);
  const resource = protectedResource(options.frontedBy?.origin ?? directUrl, path, as.issuer, requiredScopes);
  const state: ServerState = {
    path,
    check: {
      resource,
      introspect: (token) => as.introspect(token),
      counters,
      dpop:
        options.dpop === undefined || options.dpop === false
          ? undefined
          : new DPoPCheck({ requireNonce: options.dpop === 'nonce' }),
    },
    sessions,
    intercept: options.intercept,
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handle(state, req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(error) });
      else res.destroy();
    });
  });
  as.addResource(resource.url);
  options.frontedBy?.setTarget(directUrl);

  return {
    url: resource.url,
    resourceMetadataUrl: resource.metadataUrl,
    directUrl,
    counters,
    async close() {
      const transports = [...sessions.values()];
      sessions.clear();
      await Promise.all(transports.map((t) => t.close().catch(() => undefined)));
      await closeServer(server, sockets);
    },
  };
}

async function handle(state: ServerState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { path, check } = state;
  const pathname = new URL(req.url ?? '/', 'http://mcp.invalid').pathname;
  if (
    req.method === 'GET' &&
    (pathname === `/.well-known/oauth-protected-resource${path}` ||
      pathname === '/.well-known/oauth-protected-resource')
  ) {
    sendJson(res, 200, check.resource.metadata);
    return;
  }
  if (pathname !== path) {
    sendJson(res, 404, { error: 'not_found' });
    return;
  }

  const auth = await authenticate(check, req, res);
  if (auth === undefined) return;

  const body = req.method === 'POST' ? await readJson(req, res) : undefined;
  if (body === INVALID) return;
  for (const message of Array.isArray(body) ? body : [body]) recordRpc(check.counters, message);
  if (state.intercept?.(req, res, body, auth) === true) return;
  await handleInSession(state, req, res, body, auth);
}

/** The SDK's stateful sessions: a known session id, or an initialize that opens one. */
async function handleInSession(
  state: ServerState,
  req: IncomingMessage,
  res: ServerResponse,
  body: unknown,
  auth: AuthInfo,
): Promise<void> {
  const { sessions, check } = state;
  const sessionId = header(req, 'mcp-session-id');
  let transport = sessionId === undefined ? undefined : sessions.get(sessionId);
  if (sessionId !== undefined && transport === undefined) {
    check.counters.record('session', 'not-found');
    sendJson(res, 404, rpcError(-32001, 'Session not found'));
    return;
  }
  if (transport === undefined) {
    if (req.method !== 'POST' || !isInitializeRequest(body)) {
      sendJson(res, 400, rpcError(-32000, 'Bad Request: no valid session id'));
      return;
    }
    transport = await openSession(sessions, check.counters);
  }
  await transport.handleRequest(Object.assign(req, { auth }), res, body);
}

/** A new SDK server and transport per session, as the SDK's stateful examples do. */
async function openSession(
  sessions: Map<string, StreamableHTTPServerTransport>,
  counters: Counters,
): Promise<StreamableHTTPServerTransport> {
  const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    onsessioninitialized: (id) => {
      sessions.set(id, transport);
      counters.record('session', 'created');
    },
    onsessionclosed: (id) => {
      if (sessions.delete(id)) counters.record('session', 'closed');
    },
  });
  transport.onclose = () => {
    const id = transport.sessionId;
    if (id !== undefined) sessions.delete(id);
  };
  await buildServer().connect(transport);
  return transport;
}

function recordRpc(counters: Counters, message: unknown): void {
  if (typeof message !== 'object' || message === null) return;
  const { method, params } = message as { method?: unknown; params?: { name?: unknown } };
  if (typeof method !== 'string') return;
  counters.record('rpc', method);
  if (method === 'tools/call' && typeof params?.name === 'string') counters.record('tool', params.name);
}

/**
 * The tools: `echo` proves a round trip, `whoami` proves which token the call carried. One
 * new server per session; the legacy HTTP+SSE harness server serves the same ones.
 */
export function buildServer(): McpServer {
  const server = new McpServer({ name: 'latchkey-test-server', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Returns its input', inputSchema: { text: z.string() } },
    ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  server.registerTool('whoami', { description: "The subject of the caller's token" }, (extra) => ({
    content: [{ type: 'text', text: String(extra.authInfo?.extra?.['sub'] ?? '') }],
  }));
  return server;
}

const INVALID = Symbol('invalid body');

async function readJson(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    sendJson(res, 400, rpcError(-32700, 'Parse error'));
    return INVALID;
  }
}

function rpcError(code: number, message: string): object {
  return { jsonrpc: '2.0', error: { code, message }, id: null };
}
