/**
 * The MCP endpoints in the route table (routes.ts spreads MCP_ROUTES) and in the OpenAPI
 * document (openapi.ts spreads mcpOpenApiPaths): `/v1/subjects/{subject}/mcp/{upstream}` for
 * apps with an app key, `/mcp/{upstream}` for hosts holding the user's own JWT.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import { bearerOf } from './app-keys.js';
import { checkedSubject, type ServeContext, upstreamOf } from './context.js';
import { HttpError } from './http.js';
import { mcpDelete, mcpGet, mcpPost } from './mcp-endpoint.js';
import type { McpCaller } from './mcp-gateway.js';

interface McpCall {
  ctx: ServeContext;
  req: IncomingMessage;
  res: ServerResponse;
  params: string[];
}

type Handler = (
  ctx: ServeContext,
  req: IncomingMessage,
  res: ServerResponse,
  caller: McpCaller,
) => Promise<void>;

const HANDLERS: ReadonlyArray<[string, Handler]> = [
  ['POST', mcpPost],
  ['GET', mcpGet],
  ['DELETE', mcpDelete],
];

/** App key (checked by the router) and the subject in the path, as every /v1 route. */
const keyed = (handler: Handler) => async (call: McpCall) =>
  handler(call.ctx, call.req, call.res, {
    subject: checkedSubject(call.params[0] ?? ''),
    upstream: upstreamOf(call.ctx, call.params[1] ?? ''),
  });

/** The user's JWT; its `sub` is the subject. */
const byJwt = (handler: Handler) => async (call: McpCall) => {
  const subject = await jwtSubject(call.ctx, call.req);
  return handler(call.ctx, call.req, call.res, {
    subject,
    upstream: upstreamOf(call.ctx, call.params[0] ?? ''),
  });
};

export const MCP_ROUTES = [
  ...HANDLERS.map(([method, handler]) => ({
    method,
    template: '/v1/subjects/{subject}/mcp/{upstream}',
    appKey: true,
    handle: keyed(handler),
  })),
  ...HANDLERS.map(([method, handler]) => ({
    method,
    template: '/mcp/{upstream}',
    appKey: false,
    handle: byJwt(handler),
  })),
];

async function jwtSubject(ctx: ServeContext, req: IncomingMessage): Promise<string> {
  const token = bearerOf(req.headers.authorization);
  if (ctx.jwt === undefined) {
    throw unauthorized(
      'this gateway takes no user JWTs (none configured); use /v1/subjects/{subject}/mcp/{upstream} with an app key.',
    );
  }
  if (token === undefined) throw unauthorized("send the user's JWT as Authorization: Bearer <jwt>.");
  let subject: string | undefined;
  try {
    subject = await ctx.jwt.subjectOf(token);
  } catch {
    throw new HttpError(
      503,
      { error: 'temporarily_unavailable', message: "the JWT issuer's keys could not be read; try again." },
      { 'retry-after': '5' },
    );
  }
  if (subject === undefined) {
    throw unauthorized('the JWT is not valid here (signature, issuer, audience, time or sub).');
  }
  return subject;
}

function unauthorized(message: string): HttpError {
  return new HttpError(
    401,
    { error: 'unauthorized', message },
    { 'www-authenticate': 'Bearer realm="latchkey", error="invalid_token"' },
  );
}

type Json = Record<string, unknown>;

/** The OpenAPI paths of the MCP endpoints. */
export function mcpOpenApiPaths(subject: Json, upstream: Json, errorRef: Json): Json {
  const error = (description: string): Json => ({
    description,
    content: { 'application/json': { schema: errorRef } },
  });
  const operations = (keyed: boolean): Json => {
    // The JWT routes carry no `security` entry: the document marks app-key routes by it.
    const auth = keyed
      ? { security: [{ appKey: [] }] }
      : { description: "Authenticated with the user's JWT (Authorization: Bearer); its sub is the subject." };
    const common: Json = {
      '401': error(keyed ? 'No valid app key.' : 'No valid user JWT (signature, issuer, audience, time).'),
      '404': error("Unknown upstream, or an MCP session that is not this caller's."),
    };
    return {
      post: {
        ...auth,
        summary:
          "MCP Streamable HTTP: one JSON-RPC message from the host, answered with the upstream's reply.",
        requestBody: { required: true, content: { 'application/json': { schema: { type: 'object' } } } },
        responses: {
          '200': {
            description: 'The JSON-RPC answer (a login error -32042 or -32040 carries the connect link).',
          },
          '202': { description: 'A notification or response was accepted.' },
          '400': error('Not one JSON-RPC message.'),
          ...common,
        },
      },
      get: {
        ...auth,
        summary: "MCP Streamable HTTP: an event stream of the upstream's notifications.",
        responses: {
          '200': { description: 'text/event-stream' },
          '406': error('No Accept: text/event-stream.'),
          ...common,
        },
      },
      delete: {
        ...auth,
        summary: 'End the MCP session named in Mcp-Session-Id.',
        responses: { '200': { description: 'Ended.' }, '400': error('No Mcp-Session-Id.'), ...common },
      },
    };
  };
  return {
    '/v1/subjects/{subject}/mcp/{upstream}': { parameters: [subject, upstream], ...operations(true) },
    '/mcp/{upstream}': {
      parameters: [upstream],
      ...operations(false),
    },
  };
}
