import * as oauth from 'oauth4webapi';

import { secrets } from '../redact.js';
import { checkTokenLengths } from './bounded-fetch.js';
import type { TokenEndpointResult } from '../credential/token-response.js';
import type { ClientContext } from './client-context.js';
import { refusalReason } from './token-error.js';
import { bufferedCopy } from './token-http.js';

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
  /**
   * Send a DPoP proof when the context has a key and the AS takes it. Default true; the
   * lifecycle passes false for a bearer credential, so its refresh stays bearer.
   */
  dpop?: boolean;
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
    ...ctx.requestOptions(signal, options.dpop ?? true),
    additionalParameters: params,
  });
  return grantResult(
    await processTokenResponse(ctx, response, (r) =>
      oauth.processRefreshTokenResponse(ctx.as, ctx.client, r),
    ),
    requestedAt,
    ctx.server,
  );
}

/**
 * A second copy of an answer, for a retry without its ID token: made from the bytes when the
 * answer was read whole (token-http.ts), only if it is needed; else a clone, taken now.
 */
function spareOf(response: Response): { take(): Response; discard(): void } {
  const copy = bufferedCopy(response);
  if (copy !== undefined) return { take: copy, discard: () => undefined };
  const clone = response.clone();
  return {
    take: () => clone,
    // Not awaited: a refreshed token is persisted next, and the unused copy can wait.
    discard: () => void clone.body?.cancel().catch(() => undefined),
  };
}

/**
 * Process a token endpoint answer with `process` (an oauth4webapi process* function). If it is
 * refused and the answer carries an ID token, it is processed once more without that ID token:
 * latchkey asked for access to a server, not for the user's identity, so an ID token that
 * fails validation (better-auth signs one HS256 without `iss` while advertising RS256) is
 * dropped with a warning through `ctx.warn` rather than failing the login. Everything else
 * about the answer is checked as before; if the rest is bad too, that error is thrown.
 */
export async function processTokenResponse(
  ctx: Pick<ClientContext, 'warn'>,
  response: Response,
  process: (response: Response) => Promise<oauth.TokenEndpointResponse>,
): Promise<oauth.TokenEndpointResponse> {
  const spare = response.ok ? spareOf(response) : undefined;
  try {
    const result = await process(response);
    spare?.discard();
    return result;
  } catch (error) {
    if (spare === undefined || !isResponseRefusal(error)) throw error;
    const stripped = await withoutIdToken(spare.take());
    if (stripped === undefined) throw error;
    const result = await process(stripped);
    ctx.warn?.(`the ID token in the token response was ignored: ${refusalReason(error)}.`);
    return result;
  }
}

/** oauth4webapi refused a 2xx answer's content (not an OAuth error body, not a challenge). */
function isResponseRefusal(error: unknown): boolean {
  return error instanceof oauth.OperationProcessingError || error instanceof oauth.UnsupportedOperationError;
}

/** The same answer without `id_token`, or undefined when it had none (or is not JSON). */
async function withoutIdToken(response: Response): Promise<Response | undefined> {
  let body: unknown;
  try {
    body = JSON.parse(await response.text());
  } catch {
    return undefined;
  }
  if (typeof body !== 'object' || body === null || !('id_token' in body)) return undefined;
  const { id_token: _dropped, ...rest } = body as Record<string, unknown>;
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  headers.delete('content-encoding');
  return new Response(JSON.stringify(rest), {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}

/** A signal that fires after `timeoutMs` or when `signal` does. */
export function requestSignal(timeoutMs: number, signal?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return signal === undefined ? timeout : AbortSignal.any([timeout, signal]);
}

/**
 * Every token endpoint answer passes through here: tokens over the length limit refuse the
 * whole answer (before any of it is kept), its secrets join the redaction registry before
 * anything could log them, and the result carries the send time expiry is based on.
 */
export function grantResult(
  response: oauth.TokenEndpointResponse,
  requestedAt: number,
  server?: string,
): GrantResult {
  checkTokenLengths(response, server, 'the authorization server');
  const result = response as TokenEndpointResult;
  secrets.add(result.access_token);
  secrets.add(result.refresh_token);
  secrets.add(result.id_token);
  return { response: result, requestedAt };
}
