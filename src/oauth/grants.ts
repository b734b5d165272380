import * as oauth from 'oauth4webapi';

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
  const signal = combineSignals(AbortSignal.timeout(options.timeoutMs), options.signal);
  const requestedAt = Date.now();
  const response = await oauth.refreshTokenGrantRequest(ctx.as, ctx.client, ctx.clientAuth, refreshToken, {
    ...ctx.requestOptions(signal),
    additionalParameters: params,
  });
  const result = await oauth.processRefreshTokenResponse(ctx.as, ctx.client, response);
  return { response: result as TokenEndpointResult, requestedAt };
}

function combineSignals(a: AbortSignal, b: AbortSignal | undefined): AbortSignal {
  return b === undefined ? a : AbortSignal.any([a, b]);
}
