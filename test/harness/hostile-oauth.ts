/**
 * A hostile MCP server and authorization server in one, on 127.0.0.1, for the memory bounds
 * tests (issue 14, point 4). Everything up to the hostile step is a well-formed device-flow
 * login (401 challenge, RFC 9728 and RFC 8414 metadata, registration, device authorization);
 * the step named by `mode` then streams an oversized or endless body from a generator, with
 * backpressure, and stops when latchkey hangs up. Nothing is ever buffered here.
 */
import { createServer, type ServerResponse } from 'node:http';

import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';

export type HostileMode =
  /** A 201 registration answer of ~100 MB (a JSON object with a huge extra member). */
  | 'huge-registration'
  /** A 200 token answer whose access token is ~100 MB. */
  | 'huge-access-token'
  /** A 200 token answer whose access token is `tokenBytes` long (under the body limit). */
  | 'long-access-token'
  /** A 200 token answer that does not end (for 1 GiB). */
  | 'endless-token'
  /** A 400 invalid_grant whose error_description is ~100 MB. */
  | 'huge-error-description';

export interface HostileOAuthServer {
  readonly origin: string;
  /** The MCP server URL to log in to. */
  readonly mcpUrl: string;
  /** Bytes the hostile step has written so far. */
  readonly hostileBytes: number;
  /** Requests per path. */
  readonly hits: Map<string, number>;
  close(): Promise<void>;
}

const HUNDRED_MB = 100 * 1024 * 1024;
const ENDLESS_BYTES = 1024 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'a');

export async function startHostileOAuthServer(
  mode: HostileMode,
  options: { tokenBytes?: number } = {},
): Promise<HostileOAuthServer> {
  let origin = '';
  let hostileBytes = 0;
  const hits = new Map<string, number>();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    req.resume();
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    const stream = async (status: number, head: string, bytes: number, tail: string): Promise<void> => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      hostileBytes += await streamBody(res, head, bytes, tail);
    };
    switch (path) {
      case '/mcp':
        res.writeHead(401, {
          'www-authenticate': `Bearer resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`,
        });
        res.end();
        return;
      case '/.well-known/oauth-protected-resource/mcp':
      case '/.well-known/oauth-protected-resource':
        json(200, { resource: `${origin}/mcp`, authorization_servers: [origin] });
        return;
      case '/.well-known/oauth-authorization-server':
      case '/.well-known/openid-configuration':
        json(200, {
          issuer: origin,
          authorization_endpoint: `${origin}/authorize`,
          token_endpoint: `${origin}/token`,
          registration_endpoint: `${origin}/register`,
          device_authorization_endpoint: `${origin}/device`,
          response_types_supported: ['code'],
          grant_types_supported: [
            'authorization_code',
            'refresh_token',
            'urn:ietf:params:oauth:grant-type:device_code',
          ],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['none'],
        });
        return;
      case '/register':
        if (mode === 'huge-registration') {
          void stream(
            201,
            '{"client_id":"hostile","token_endpoint_auth_method":"none","junk":"',
            HUNDRED_MB,
            '"}',
          );
          return;
        }
        json(201, { client_id: 'hostile', token_endpoint_auth_method: 'none' });
        return;
      case '/device':
        json(200, {
          device_code: 'device-code',
          user_code: 'ABCD-EFGH',
          verification_uri: `${origin}/verify`,
          expires_in: 600,
          interval: 1,
        });
        return;
      case '/token':
        void token(mode, res, stream, options.tokenBytes ?? 40 * 1024);
        return;
      default:
        res.writeHead(404).end();
    }
  });
  const sockets = trackSockets(server);
  origin = await listenOnLoopback(server);
  return {
    origin,
    mcpUrl: `${origin}/mcp`,
    get hostileBytes() {
      return hostileBytes;
    },
    hits,
    close: () => closeServer(server, sockets),
  };
}

async function token(
  mode: HostileMode,
  res: ServerResponse,
  stream: (status: number, head: string, bytes: number, tail: string) => Promise<void>,
  tokenBytes: number,
): Promise<void> {
  const head = '{"token_type":"Bearer","expires_in":3600,"access_token":"';
  switch (mode) {
    case 'huge-access-token':
      return stream(200, head, HUNDRED_MB, '"}');
    case 'long-access-token':
      return stream(200, head, tokenBytes, '","refresh_token":"r"}');
    case 'endless-token':
      // "Endless" up to 1 GiB, ten thousand times every limit: enough to prove the point
      // without letting a latchkey without caps eat the test machine (it reached 5 GB in 60 s).
      return stream(200, head, ENDLESS_BYTES, '');
    case 'huge-error-description':
      return stream(400, '{"error":"invalid_grant","error_description":"', HUNDRED_MB, '"}');
    default:
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'authorization_pending' }));
  }
}

/** Write head, `bytes` filler bytes (a generator of 64 KiB chunks) and tail; returns bytes written. */
async function streamBody(res: ServerResponse, head: string, bytes: number, tail: string): Promise<number> {
  let written = 0;
  res.write(head);
  for (const chunk of filler(bytes)) {
    if (res.destroyed) return written;
    written += chunk.byteLength;
    if (!res.write(chunk)) {
      const open = await drained(res);
      if (!open) return written;
    }
  }
  res.end(tail);
  return written;
}

function* filler(bytes: number): Generator<Buffer> {
  for (let left = bytes; left > 0; left -= CHUNK.byteLength) {
    yield left >= CHUNK.byteLength ? CHUNK : CHUNK.subarray(0, left);
  }
}

/** True on drain, false once the client has gone. */
function drained(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (open: boolean) => (): void => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(open);
    };
    const onDrain = done(true);
    const onClose = done(false);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}
