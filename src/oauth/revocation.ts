import * as oauth from 'oauth4webapi';

import { secrets } from '../redact.js';
import { networkText } from '../network-text.js';
import { boundedFetch, ResponseLimits } from './bounded-fetch.js';
import type { ClientContext } from './client-context.js';
import { safeCode } from './oauth-errors.js';
import { classifyTokenFailure } from './token-error.js';

/**
 * Token revocation (RFC 7009), the server side of logout. Not in the MCP spec (spec §1.12);
 * latchkey uses the AS's `revocation_endpoint`. Every token gets an outcome, and none is
 * hidden: an AS without revocation is reported as `unsupported`, a failed request as
 * `failed` with a reason that never contains token text.
 */
export type RevocationOutcome =
  | { status: 'revoked' }
  /** The AS cannot revoke this token: no revocation endpoint, or `unsupported_token_type`. */
  | { status: 'unsupported'; reason: string }
  | {
      status: 'failed';
      /** Short, redacted description (an OAuth error code, an HTTP status, a network error). */
      reason: string;
      /** Whether trying again later may succeed (network, 5xx, 429, timeout). */
      retryable: boolean;
      /** The OAuth error code the AS answered with, when it sent one. */
      error?: string;
      httpStatus?: number;
      /** The AS's Retry-After (429/503), for a retried revocation's schedule. */
      retryAfterMs?: number;
    };

export interface RevocationReport {
  /** The AS's revocation endpoint; undefined when it has none. */
  endpoint: string | undefined;
  /** Present when a refresh token was given. */
  refreshToken?: RevocationOutcome;
  /** Present when an access token was given. */
  accessToken?: RevocationOutcome;
}

export interface RevokeOptions {
  /** Timeout of each revocation request. */
  timeoutMs: number;
  /** Overrides the fetch the context was built with. */
  fetch?: typeof fetch | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Revoke the refresh token first (`token_type_hint=refresh_token`; at most ASes this ends the
 * whole grant), then the access token (`token_type_hint=access_token`). Both are attempted
 * even when the first fails. Never throws for an AS answer; only a programming error does.
 */
export async function revokeTokens(
  ctx: ClientContext,
  tokens: { accessToken?: string | undefined; refreshToken?: string | undefined },
  options: RevokeOptions,
): Promise<RevocationReport> {
  secrets.add(tokens.accessToken);
  secrets.add(tokens.refreshToken);
  const endpoint = typeof ctx.as.revocation_endpoint === 'string' ? ctx.as.revocation_endpoint : undefined;
  const report: RevocationReport = { endpoint };
  if (tokens.refreshToken !== undefined) {
    report.refreshToken = await revokeOne(ctx, endpoint, tokens.refreshToken, 'refresh_token', options);
  }
  if (tokens.accessToken !== undefined) {
    report.accessToken = await revokeOne(ctx, endpoint, tokens.accessToken, 'access_token', options);
  }
  return report;
}

/** Outcomes that a retry could still change (failed); `unsupported` is final. */
export function revocationFailures(report: RevocationReport): RevocationOutcome[] {
  return [report.refreshToken, report.accessToken].filter(
    (o): o is RevocationOutcome => o !== undefined && o.status === 'failed',
  );
}

/** Whether the AS refused the client itself (invalid_client): its registration is dead. */
export function rejectedClient(report: RevocationReport): boolean {
  return [report.refreshToken, report.accessToken].some(
    (o) => o?.status === 'failed' && (o.error === 'invalid_client' || o.error === 'unauthorized_client'),
  );
}

async function revokeOne(
  ctx: ClientContext,
  endpoint: string | undefined,
  token: string,
  hint: 'refresh_token' | 'access_token',
  options: RevokeOptions,
): Promise<RevocationOutcome> {
  if (endpoint === undefined) {
    return {
      status: 'unsupported',
      reason: `the authorization server ${ctx.as.issuer} has no revocation endpoint`,
    };
  }
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
  const requestOptions: oauth.RevocationRequestOptions = {
    ...ctx.requestOptions(signal),
    additionalParameters: { token_type_hint: hint },
  };
  if (options.fetch !== undefined) {
    requestOptions[oauth.customFetch] = boundedFetch(options.fetch, {
      limit: ResponseLimits.endpoint,
      what: 'revocation response',
    }) as never;
  }
  try {
    const response = await oauth.revocationRequest(ctx.as, ctx.client, ctx.clientAuth, token, requestOptions);
    await oauth.processRevocationResponse(response);
    return { status: 'revoked' };
  } catch (error) {
    return failedOutcome(error, hint);
  }
}

function failedOutcome(error: unknown, hint: string): RevocationOutcome {
  if (error instanceof oauth.ResponseBodyError && error.error === 'unsupported_token_type') {
    return {
      status: 'unsupported',
      reason: `the authorization server does not revoke ${hint.replace('_', ' ')}s`,
    };
  }
  const failure = classifyTokenFailure(error);
  const status =
    error instanceof oauth.ResponseBodyError
      ? error.status
      : failure.kind === 'transient'
        ? failure.status
        : undefined;
  const httpStatus = status === undefined ? {} : { httpStatus: status };
  if (failure.kind === 'transient') {
    // A 4xx without an OAuth error body will not change by itself; everything else may.
    const retryable = status === undefined || status >= 500 || status === 429 || status === 408;
    const retryAfter = failure.retryAfterMs === undefined ? {} : { retryAfterMs: failure.retryAfterMs };
    return {
      status: 'failed',
      reason: networkText(failure.reason),
      retryable,
      ...httpStatus,
      ...retryAfter,
    };
  }
  const code = safeCode(failure.error);
  return {
    status: 'failed',
    reason: status === undefined ? code : `${code} (HTTP ${status})`,
    retryable: false,
    error: code,
    ...httpStatus,
  };
}
