import * as oauth from 'oauth4webapi';

import { secrets } from '../credential/redact.js';
import type { TokenEndpointResult } from '../credential/token-response.js';
import type { ClientContext } from './client-context.js';

export interface GrantResult {
  response: TokenEndpointResult;
  /** Epoch ms taken just before the request was sent. */
  requestedAt: number;
}

export interface RefreshOptions {
  /** RFC 8707 resource indicator; the MCP server's canonical URI. */
  resource?: string;
  /** Some IdPs want scope repeated on refresh; most must not get it (it can narrow the grant). */
  scope?: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * RFC 6749 section 6 refresh. Exactly one request: a refresh POST is never retried here,
 * because under rotation a retry after a lost response presents a consumed token and the AS
 * revokes the whole grant. Retrying is the lifecycle layer's decision, under the lease.
 */
export async function refreshTokenGrant(
  ctx: ClientContext,
  refreshToken: string,
  options: RefreshOptions,
): Promise<GrantResult> {
  const params = new URLSearchParams();
  if (options.resource !== undefined) params.set('resource', options.resource);
  if (options.scope !== undefined) params.set('scope', options.scope);
  const signal = requestSignal(options.timeoutMs, options.signal);
  const requestedAt = Date.now();
  const response = await oauth.refreshTokenGrantRequest(ctx.as, ctx.client, ctx.clientAuth, refreshToken, {
    ...ctx.requestOptions(signal),
    additionalParameters: params,
  });
  return grantResult(await oauth.processRefreshTokenResponse(ctx.as, ctx.client, response), requestedAt);
}

/** A signal that fires after `timeoutMs` or when `signal` does. */
export function requestSignal(timeoutMs: number, signal?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return signal === undefined ? timeout : AbortSignal.any([timeout, signal]);
}

/**
 * Every token endpoint answer passes through here: its secrets join the redaction registry
 * before anything could log them, and the result carries the send time expiry is based on.
 */
export function grantResult(response: oauth.TokenEndpointResponse, requestedAt: number): GrantResult {
  const result = response as TokenEndpointResult;
  secrets.add(result.access_token);
  secrets.add(result.refresh_token);
  secrets.add(result.id_token);
  return { response: result, requestedAt };
}
