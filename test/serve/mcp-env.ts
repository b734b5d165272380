// What the MCP gateway tests share: the serve stack (serve-env.ts) with the AS behind the
// fault proxy, what a host reads from the gateway's answers, a raw host's POST, and a tiny IdP
// for the user-JWT tests.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

import type { JwtConfig } from '../../src/serve/jwt.js';
import type { FaultProxy } from '../harness/index.js';
import { type ServeEnv, startServeEnv } from './serve-env.js';

export type McpEnv = ServeEnv & { asProxy: FaultProxy };

export async function startMcpEnv(options: {
  accessTokenTtl: number;
  jwt?: JwtConfig;
  modernOnly?: boolean;
}): Promise<McpEnv> {
  const env = await startServeEnv({
    accessTokenTtl: options.accessTokenTtl,
    faultProxy: true,
    ...(options.modernOnly === undefined ? {} : { modernOnly: options.modernOnly }),
    serve: { refresher: false, ...(options.jwt === undefined ? {} : { jwt: options.jwt }) },
  });
  const { asProxy } = env;
  assert.ok(asProxy !== undefined);
  return { ...env, asProxy };
}

/** The text of a tools/call result. */
export function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => c.text ?? '').join('');
}

/** The JSON-RPC error `call` fails with; fails the test if it succeeds. */
export async function rpcError(call: Promise<unknown>): Promise<McpError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof McpError, `an McpError, not ${String(error)}`);
    return error;
  }
  assert.fail('the call succeeded');
}

/** The 2025-06-18 `initialize` of a raw host, one without an SDK client. */
export const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

/** POST one JSON-RPC message to `url` as a raw Streamable HTTP host does, with these headers. */
export function postRpc(url: string, message: unknown, headers: Record<string, string>): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      ...headers,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify(message),
  });
}

/** A tiny IdP for user JWTs: an ES256 key pair, its JWKS and OpenID metadata on loopback. */
export interface TestIssuer {
  issuer: string;
  sign(claims: { sub: string; aud: string; exp?: number; iss?: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startTestIssuer(): Promise<TestIssuer> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const server: Server = createServer((req, res) => {
    const body =
      req.url === '/.well-known/openid-configuration'
        ? { issuer, jwks_uri: `${issuer}/jwks` }
        : req.url === '/jwks'
          ? { keys: [jwk] }
          : undefined;
    res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    async sign(claims) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(claims.iss ?? issuer)
        .setSubject(claims.sub)
        .setAudience(claims.aud)
        .setIssuedAt(now)
        .setExpirationTime(claims.exp ?? now + 300)
        .sign(privateKey);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
