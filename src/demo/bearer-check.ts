/**
 * The demo MCP server's resource-server half: what it advertises (RFC 9728 metadata) and how
 * it checks a bearer token (RFC 7662 introspection at the AS), answering every rejection
 * with the RFC 6750 challenge a client needs to find the AS and the scopes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';

import type { AuthorizationServer } from './authorization-server.js';
import type { Counters } from './counters.js';
import type { DPoPCheck } from './dpop-check.js';
import { sendJson } from './reply.js';

/** This server as an OAuth protected resource. */
export interface ProtectedResource {
  /** The RFC 8707 resource and token audience. */
  readonly url: string;
  /** Path-inserted form (RFC 9728 3.1). */
  readonly metadataUrl: string;
  readonly requiredScopes: readonly string[];
  readonly metadata: object;
}

export function protectedResource(
  origin: string,
  path: string,
  issuer: string,
  requiredScopes: readonly string[],
): ProtectedResource {
  const url = `${origin}${path}`;
  return {
    url,
    metadataUrl: `${origin}/.well-known/oauth-protected-resource${path}`,
    requiredScopes,
    metadata: {
      resource: url,
      authorization_servers: [issuer],
      scopes_supported: requiredScopes,
      bearer_methods_supported: ['header'],
      resource_name: 'latchkey test MCP server',
    },
  };
}

export interface BearerCheck {
  resource: ProtectedResource;
  introspect: AuthorizationServer['introspect'];
  /** `auth` is counted per request: missing | invalid_token | insufficient_scope | ok. */
  counters: Counters;
  /**
   * Accept DPoP-bound tokens (RFC 9449) with their proofs, checked here; `dpop` is counted
   * per proof: ok | invalid_dpop_proof | use_dpop_nonce. Without it, only bearer tokens.
   */
  dpop?: DPoPCheck | undefined;
}

/** Bearer check by introspection. Answers the rejection itself and returns undefined. */
export async function authenticate(
  check: BearerCheck,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<AuthInfo | undefined> {
  const { resource, counters } = check;
  const scheme = check.dpop === undefined ? 'Bearer' : 'DPoP';
  if (check.dpop !== undefined) res.setHeader('dpop-nonce', check.dpop.nonce);
  const match = /^(Bearer|DPoP)\s+(\S+)\s*$/i.exec(header(req, 'authorization') ?? '');
  if (match?.[2] === undefined) {
    counters.record('auth', 'missing');
    challenge(resource, res, 401, {}, scheme);
    return undefined;
  }
  const token = match[2];
  const info = await check.introspect(token);
  const jkt = (info['cnf'] as { jkt?: unknown } | undefined)?.jkt;
  const bound = typeof jkt === 'string';
  const description = tokenProblem(
    info,
    resource.url,
    match[1]?.toLowerCase() === 'dpop',
    check.dpop !== undefined,
  );
  if (description !== undefined) {
    counters.record('auth', 'invalid_token');
    challenge(resource, res, 401, { error: 'invalid_token', error_description: description }, scheme);
    return undefined;
  }
  if (bound && check.dpop !== undefined) {
    const verdict = await check.dpop.verify(req, resource.url, token, jkt);
    counters.record('dpop', verdict.ok ? 'ok' : verdict.error);
    if (!verdict.ok) {
      challenge(resource, res, 401, { error: verdict.error, error_description: verdict.description }, 'DPoP');
      return undefined;
    }
  }
  const scopes = (info.scope ?? '').split(' ').filter(Boolean);
  const missing = resource.requiredScopes.filter((s) => !scopes.includes(s));
  if (missing.length > 0) {
    counters.record('auth', 'insufficient_scope');
    challenge(
      resource,
      res,
      403,
      { error: 'insufficient_scope', error_description: `missing scope ${missing.join(' ')}` },
      scheme,
    );
    return undefined;
  }
  counters.record('auth', 'ok');
  return {
    token,
    clientId: info.client_id ?? '',
    scopes,
    ...(info.exp === undefined ? {} : { expiresAt: info.exp }),
    resource: new URL(resource.url),
    extra: { sub: info.sub },
  };
}

/** Why an introspected token is refused here, or undefined when it is not. */
function tokenProblem(
  info: Awaited<ReturnType<BearerCheck['introspect']>>,
  resource: string,
  presentedAsDPoP: boolean,
  acceptsDPoP: boolean,
): string | undefined {
  const audiences = info.aud === undefined ? [] : Array.isArray(info.aud) ? info.aud : [info.aud];
  const bound = typeof (info['cnf'] as { jkt?: unknown } | undefined)?.jkt === 'string';
  if (!info.active) return 'token is not active';
  if (!audiences.includes(resource)) return 'token audience is not this server';
  // RFC 9449 §7.2: a bound token presented as a bearer token is refused, and the reverse too.
  if (bound !== presentedAsDPoP) return 'token scheme does not match its binding';
  if (bound && !acceptsDPoP) return 'this server does not accept DPoP tokens';
  return undefined;
}

function challenge(
  resource: ProtectedResource,
  res: ServerResponse,
  status: 401 | 403,
  error: { error?: string; error_description?: string },
  scheme: 'Bearer' | 'DPoP' = 'Bearer',
): void {
  const params = [
    `resource_metadata="${resource.metadataUrl}"`,
    `scope="${resource.requiredScopes.join(' ')}"`,
  ];
  if (error.error !== undefined) params.unshift(`error="${error.error}"`);
  if (error.error_description !== undefined) params.push(`error_description="${error.error_description}"`);
  if (scheme === 'DPoP') params.push('algs="ES256 EdDSA"');
  res.setHeader('www-authenticate', `${scheme} ${params.join(', ')}`);
  sendJson(res, status, error.error === undefined ? { error: 'unauthorized' } : error);
}

/** The first value of a request header (node gives an array for repeated ones). */
export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
