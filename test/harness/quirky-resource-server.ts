/**
 * A protected resource that publishes its metadata the way some real servers do, which the
 * SDK harness server does not:
 * - its protected-resource metadata only at the URL its 401 challenge names (no well-known
 *   document), with its AS on another origin;
 * - a `resource` that may be its origin instead of its URL (better-auth's MCP plugin);
 * - a `scope` in the challenge that differs from `scopes_supported`;
 * - optionally a 500 instead of a 401 for a token it rejects (the MCP SDK's example verifier).
 * A request with a token the AS says is active gets just enough MCP for a host to connect
 * and ping (stateless: no sessions, no GET stream).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

import type { TestAuthorizationServer } from './authorization-server.js';
import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';
import { sendJson } from '../../src/demo/reply.js';

export interface QuirkyResourceServerOptions {
  authorizationServer: Pick<TestAuthorizationServer, 'issuer' | 'introspect' | 'addResource'>;
  /** The PRM `resource`: the endpoint URL (default), its origin, or another path on its origin. */
  resource?: 'url' | 'origin' | { path: string };
  /** `scope` of the 401 challenge. Default none. */
  challengeScope?: string;
  /** PRM `scopes_supported`. Default none. */
  scopesSupported?: readonly string[];
  /** Status for a token the AS does not vouch for. Default 401. */
  rejectedTokenStatus?: 401 | 500;
}

export interface QuirkyResourceServer {
  /** The MCP endpoint, `<origin>/mcp`. */
  readonly url: string;
  readonly origin: string;
  /** The only place its metadata is served. */
  readonly resourceMetadataUrl: string;
  /** The `resource` its metadata names. */
  readonly resource: string;
  /** Requests per path, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

const METADATA_PATH = '/metadata/protected-resource.json';

export async function startQuirkyResourceServer(
  options: QuirkyResourceServerOptions,
): Promise<QuirkyResourceServer> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  const sockets = trackSockets(server);
  const origin = await listenOnLoopback(server);
  const url = `${origin}/mcp`;
  const resource =
    options.resource === undefined || options.resource === 'url'
      ? url
      : options.resource === 'origin'
        ? origin
        : `${origin}${options.resource.path}`;
  const resourceMetadataUrl = `${origin}${METADATA_PATH}`;
  options.authorizationServer.addResource(resource);

  const challenge =
    `Bearer resource_metadata="${resourceMetadataUrl}"` +
    (options.challengeScope === undefined ? '' : `, scope="${options.challengeScope}"`);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', origin).pathname;
    requests.push(path);
    if (req.method === 'GET' && path === METADATA_PATH) {
      sendJson(res, 200, {
        resource,
        authorization_servers: [options.authorizationServer.issuer],
        ...(options.scopesSupported === undefined ? {} : { scopes_supported: options.scopesSupported }),
      });
      return;
    }
    if (path !== '/mcp') {
      sendJson(res, 404, { error: 'not_found' });
      return;
    }
    const token = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const body = await readBody(req);
    if (token === undefined) {
      res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'unauthorized' }));
      return;
    }
    const introspection = await options.authorizationServer.introspect(token);
    if (!introspection.active) {
      if (options.rejectedTokenStatus === 500) {
        sendJson(res, 500, { error: 'server_error', error_description: 'Internal Server Error' });
        return;
      }
      res.writeHead(401, { 'www-authenticate': `${challenge}, error="invalid_token"` });
      res.end();
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end(); // no GET stream, no sessions to delete
      return;
    }
    const message = JSON.parse(body || '{}') as { id?: unknown; method?: unknown; params?: unknown };
    if (message.id === undefined) {
      res.writeHead(202).end(); // a notification
      return;
    }
    sendJson(res, 200, { jsonrpc: '2.0', id: message.id, result: resultFor(message) });
  }

  return {
    url,
    origin,
    resourceMetadataUrl,
    resource,
    requests,
    close: () => closeServer(server, sockets),
  };
}

/** Just enough MCP for a host to connect and ping: an initialize answer, else an empty result. */
function resultFor(message: { method?: unknown; params?: unknown }): Record<string, unknown> {
  if (message.method !== 'initialize') return {};
  const requested = (message.params as { protocolVersion?: unknown } | undefined)?.protocolVersion;
  return {
    protocolVersion: typeof requested === 'string' ? requested : '2025-06-18',
    capabilities: {},
    serverInfo: { name: 'quirky-resource-server', version: '1.0.0' },
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
