/**
 * The MCP endpoints of `latchkey serve` (Streamable HTTP, host side): a host POSTs JSON-RPC,
 * may hold a GET event stream for server notifications, and may DELETE its session. Every
 * request goes to the subject's shared upstream link (mcp-link.ts) with that subject's
 * credential, refreshed as needed. Requests are answered as application/json.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import { SUPPORTED_PROTOCOL_VERSIONS, LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import { ErrorCode, isLatchkeyError } from '../errors.js';
import {
  errorResponse,
  isNotification,
  isRequest,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../mcp/jsonrpc.js';
import { modernRevision } from '../mcp/request-metadata.js';
import { fromLatchkeyError } from '../mcp/rpc-errors.js';
import type { ServeContext } from './context.js';
import { HttpError, readJson, sendJson } from './http.js';
import type { McpCaller, McpGateway } from './mcp-gateway.js';
import { LinkRefusal } from './mcp-link.js';
import { declaresUrlElicitation, type HostTraits, loginRequiredAnswer, portalHint } from './mcp-login.js';

/** Hosts' messages may carry tool arguments of some size. */
const MAX_MCP_BODY = 4 * 1024 * 1024;
/** A comment on idle GET streams, so proxies in between do not time them out. */
const KEEPALIVE_MS = 25_000;

function gatewayOf(ctx: ServeContext): McpGateway {
  if (ctx.mcpGateway === undefined) throw new Error('the MCP gateway is not set up');
  return ctx.mcpGateway;
}

/** POST: one JSON-RPC message from the host. */
export async function mcpPost(
  ctx: ServeContext,
  req: IncomingMessage,
  res: ServerResponse,
  caller: McpCaller,
): Promise<void> {
  const gateway = gatewayOf(ctx);
  const message = asMessage(await readJson(req, MAX_MCP_BODY));
  const sessionId = headerOf(req, 'mcp-session-id');
  if (isRequest(message) && message.method === 'initialize') {
    await initialize(ctx, res, caller, message);
    return;
  }
  const session = gateway.session(sessionId, caller);
  if (session === 'foreign') throw unknownSession();
  if (!isRequest(message)) {
    if (isNotification(message) && message.method === 'notifications/cancelled') {
      gateway.cancel(inflightKey(sessionId, message.params?.['requestId']));
    }
    // Other notifications and answers concern the gateway's own session upstream, not the host's.
    res.writeHead(202, { 'cache-control': 'no-store' });
    res.end();
    return;
  }
  const traits: HostTraits = {
    urlElicitation:
      session?.traits.urlElicitation ??
      declaresUrlElicitation(metaOf(message)?.['io.modelcontextprotocol/clientCapabilities']),
    modern: modernRevision(message) !== undefined,
  };
  sendJson(res, 200, await forward(ctx, gateway, res, caller, message, traits, sessionId));
}

async function forward(
  ctx: ServeContext,
  gateway: McpGateway,
  res: ServerResponse,
  caller: McpCaller,
  request: JsonRpcRequest,
  traits: HostTraits,
  sessionId: string | undefined,
): Promise<JsonRpcResponse> {
  const problem = await credentialProblem(ctx, caller, request, traits);
  if (problem !== undefined) return problem;
  const link = gateway.links.link(caller.subject, caller.upstream.url);
  const key = inflightKey(sessionId, request.id);
  let answered = false;
  res.once('close', () => {
    if (!answered) gateway.cancel(key);
  });
  try {
    const answer = await link.request(request.method, request.params, request.id, (gatewayId) =>
      gateway.track(key, { link, gatewayId }),
    );
    return needsLogin(answer) ? loginAnswer(ctx, caller, request, traits) : answer;
  } finally {
    answered = true;
    gateway.track(key, undefined);
  }
}

/**
 * The host's handshake, answered here: with the upstream's own InitializeResult when the
 * user is connected, else with a stand-in that lets the host finish its handshake, so its
 * first real request can show the user the connect link.
 */
async function initialize(
  ctx: ServeContext,
  res: ServerResponse,
  caller: McpCaller,
  request: JsonRpcRequest,
): Promise<void> {
  const params = request.params ?? {};
  const traits: HostTraits = {
    urlElicitation: declaresUrlElicitation(params['capabilities']),
    modern: false,
  };
  const requested = params['protocolVersion'];
  const protocolVersion =
    typeof requested === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(requested)
      ? requested
      : LATEST_PROTOCOL_VERSION;
  let result: Record<string, unknown> = standIn(ctx, caller);
  const problem = await credentialProblem(ctx, caller, request, traits);
  if (problem?.error !== undefined && !isLoginAnswer(problem)) {
    sendJson(res, 200, problem);
    return;
  }
  if (problem === undefined) {
    try {
      result = await gatewayOf(ctx).links.link(caller.subject, caller.upstream.url).initialized();
    } catch (error) {
      if (!(error instanceof LinkRefusal)) throw error;
      if (!needsLogin({ jsonrpc: '2.0', id: request.id, error: error.error })) {
        sendJson(res, 200, errorResponse(request.id, error.error));
        return;
      }
    }
  }
  const sessionId = gatewayOf(ctx).open(caller, traits);
  sendJson(
    res,
    200,
    { jsonrpc: '2.0', id: request.id, result: { ...result, protocolVersion } },
    { 'mcp-session-id': sessionId },
  );
}

/** For a user not connected yet: the usual capabilities, and the link in the instructions. */
function standIn(ctx: ServeContext, caller: McpCaller): Record<string, unknown> {
  return {
    capabilities: {
      tools: { listChanged: true },
      prompts: { listChanged: true },
      resources: { listChanged: true },
    },
    serverInfo: { name: `latchkey-serve/${caller.upstream.id}`, version: '1' },
    instructions: `Not connected to ${caller.upstream.id} yet: open ${portalHint(ctx, caller.upstream.id)}`,
  };
}

/** GET: an event stream of the upstream's notifications for this subject. */
export async function mcpGet(
  ctx: ServeContext,
  req: IncomingMessage,
  res: ServerResponse,
  caller: McpCaller,
): Promise<void> {
  const gateway = gatewayOf(ctx);
  if (!(headerOf(req, 'accept') ?? '').includes('text/event-stream')) {
    throw new HttpError(406, {
      error: 'not_acceptable',
      message: 'a GET stream needs Accept: text/event-stream.',
    });
  }
  const session = gateway.session(headerOf(req, 'mcp-session-id'), caller);
  if (session === 'foreign') throw unknownSession();
  const link = gateway.links.link(caller.subject, caller.upstream.url);
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-store',
    connection: 'keep-alive',
  });
  res.write(': latchkey\n\n');
  const listener = (message: JsonRpcMessage): void => {
    res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
  };
  link.listeners.add(listener);
  session?.streams.add(res);
  gateway.streams.add(res);
  const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
  keepalive.unref();
  await new Promise<void>((resolve) => res.once('close', resolve));
  clearInterval(keepalive);
  link.listeners.delete(listener);
  session?.streams.delete(res);
  gateway.streams.delete(res);
}

/** DELETE: the host ends its session. The upstream link stays for the subject's other hosts. */
export async function mcpDelete(
  ctx: ServeContext,
  req: IncomingMessage,
  res: ServerResponse,
  caller: McpCaller,
): Promise<void> {
  const gateway = gatewayOf(ctx);
  const id = headerOf(req, 'mcp-session-id');
  if (id === undefined) {
    throw new HttpError(400, { error: 'invalid_request', message: 'name the session in Mcp-Session-Id.' });
  }
  const session = gateway.session(id, caller);
  if (session === 'foreign' || session === undefined) throw unknownSession();
  gateway.end(id);
  res.writeHead(200, { 'cache-control': 'no-store' });
  res.end();
}

/**
 * undefined when the subject holds a token valid now (refreshed first if needed); else the
 * answer for the host: the connect link when a login is needed, the library's error when the
 * AS failed transiently (the connection is kept; nothing is deleted).
 */
async function credentialProblem(
  ctx: ServeContext,
  caller: McpCaller,
  request: JsonRpcRequest,
  traits: HostTraits,
): Promise<JsonRpcResponse | undefined> {
  try {
    await ctx.manager.getToken(caller.upstream.url, { subject: caller.subject, interactive: false });
    return undefined;
  } catch (error) {
    if (
      isLatchkeyError(error) &&
      (error.code === ErrorCode.LOGIN_REQUIRED || error.code === ErrorCode.CANCELLED)
    ) {
      return loginAnswer(ctx, caller, request, traits);
    }
    const rpc = fromLatchkeyError(caller.upstream.url, error) ?? {
      code: -32603,
      message: `latchkey: an unexpected error occurred with ${caller.upstream.id}.`,
    };
    return errorResponse(request.id, rpc);
  }
}

function loginAnswer(
  ctx: ServeContext,
  caller: McpCaller,
  request: JsonRpcRequest,
  traits: HostTraits,
): JsonRpcResponse {
  return loginRequiredAnswer(request.id, request.method, traits, {
    upstream: caller.upstream.id,
    url: portalHint(ctx, caller.upstream.id),
  });
}

/** A login answer of ours, as opposed to a failure that is not the user's to fix. */
function isLoginAnswer(answer: JsonRpcResponse): boolean {
  const data = answer.error?.data as { latchkey?: { code?: unknown }; elicitations?: unknown } | undefined;
  return (
    data?.elicitations !== undefined ||
    data?.latchkey?.code === 'LOGIN_REQUIRED' ||
    answer.error === undefined
  );
}

/** The connection's answer when the upstream refused the token and no refresh could help. */
function needsLogin(answer: JsonRpcResponse): boolean {
  const data = answer.error?.data as { latchkey?: { code?: unknown } } | undefined;
  return data?.latchkey?.code === ErrorCode.LOGIN_REQUIRED;
}

function asMessage(body: unknown): JsonRpcMessage {
  const ok =
    typeof body === 'object' &&
    body !== null &&
    !Array.isArray(body) &&
    (body as { jsonrpc?: unknown }).jsonrpc === '2.0';
  if (!ok) {
    throw new HttpError(400, {
      error: 'invalid_request',
      message: 'the body must be one JSON-RPC 2.0 message (batches are not supported).',
    });
  }
  return body as JsonRpcMessage;
}

function metaOf(request: JsonRpcRequest): Record<string, unknown> | undefined {
  const meta = request.params?.['_meta'];
  return typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : undefined;
}

function inflightKey(sessionId: string | undefined, id: unknown): string {
  return JSON.stringify([sessionId ?? '', id ?? null]);
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function unknownSession(): HttpError {
  return new HttpError(404, {
    error: 'unknown_session',
    message: 'no such MCP session for this user and upstream; initialize again.',
  });
}
