import * as oauth from 'oauth4webapi';

import { networkText } from '../network-text.js';

/**
 * How a failed token-endpoint request should be treated. This is the one place that reads
 * oauth4webapi's and fetch's errors; everything above works with this classification.
 */
export type TokenFailure =
  | { kind: 'invalid-grant'; error: string; description?: string }
  | { kind: 'client-rejected'; error: string; description?: string }
  | { kind: 'interaction-required'; error: string; description?: string }
  | { kind: 'transient'; reason: string; status?: number; retryAfterMs?: number };

/** RFC 6749 errors meaning the grant itself is dead. */
const GRANT_DEAD = new Set(['invalid_grant']);
/** The AS no longer accepts this client (stale registration). */
const CLIENT_DEAD = new Set(['invalid_client', 'unauthorized_client']);
/** The user must be involved (OIDC / MSAL-style codes). */
const NEEDS_USER = new Set([
  'interaction_required',
  'login_required',
  'consent_required',
  'invalid_scope',
  'bad_token',
]);
/** Errors the AS itself declares temporary. */
const AS_TEMPORARY = new Set(['temporarily_unavailable', 'server_error', 'slow_down']);

export function classifyTokenFailure(error: unknown): TokenFailure {
  if (error instanceof oauth.ResponseBodyError)
    return fromOAuthError(error.error, error.error_description, error.response);
  if (error instanceof oauth.WWWAuthenticateChallengeError) {
    const code = error.cause[0]?.parameters.error ?? 'invalid_client';
    return fromOAuthError(code, error.cause[0]?.parameters.error_description, error.response);
  }
  if (error instanceof oauth.OperationProcessingError) {
    const response = error.cause instanceof Response ? error.cause : undefined;
    if (response !== undefined) return transientFromResponse(response, `HTTP ${response.status}`);
    return { kind: 'transient', reason: `the token response was refused: ${refusalReason(error)}` };
  }
  if (error instanceof oauth.UnsupportedOperationError) {
    return { kind: 'transient', reason: `the token response was refused: ${refusalReason(error)}` };
  }
  return { kind: 'transient', reason: networkReason(error) };
}

const MAX_REASON_LENGTH = 200;

/**
 * Why oauth4webapi refused an answer, for the user at the default log level: its message
 * (fixed library text such as 'unexpected JWT "iss" (issuer) claim value', never token
 * content) and its code, bounded and without control characters.
 */
export function refusalReason(error: unknown): string {
  if (!(error instanceof Error)) return 'unparseable';
  const code = (error as { code?: unknown }).code;
  const text = networkText(error.message, { maxLength: MAX_REASON_LENGTH });
  return typeof code === 'string' ? `${text} (${code})` : text;
}

/** Longest OAuth error code echoed; real codes are short ASCII words. */
const MAX_CODE_LENGTH = 64;

function fromOAuthError(code: string, description: string | undefined, response: Response): TokenFailure {
  // Both come from the AS: they are made safe here, once, for every grant and every caller.
  // Typed strings by oauth4webapi, but copied from the body as sent: {"toString":null} arrives too.
  const error = networkText(code, { maxLength: MAX_CODE_LENGTH });
  const detail = typeof description === 'string' ? { description: networkText(description) } : {};
  if (GRANT_DEAD.has(code)) return { kind: 'invalid-grant', error, ...detail };
  if (CLIENT_DEAD.has(code)) return { kind: 'client-rejected', error, ...detail };
  if (NEEDS_USER.has(code)) return { kind: 'interaction-required', error, ...detail };
  if (AS_TEMPORARY.has(code) || response.status >= 500 || response.status === 429) {
    return transientFromResponse(response, `${error} (HTTP ${response.status})`);
  }
  // An unknown 4xx error code: the request as we send it will not start working by itself.
  return { kind: 'interaction-required', error, ...detail };
}

function transientFromResponse(response: Response, reason: string): TokenFailure {
  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
  return {
    kind: 'transient',
    reason,
    status: response.status,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

/** RFC 9110 Retry-After: delay-seconds or an HTTP-date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function networkReason(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'request timed out';
    const cause = (error as { cause?: { code?: unknown } }).cause;
    if (cause !== undefined && typeof cause.code === 'string') return `network error ${cause.code}`;
    return `network error (${error.name})`;
  }
  return 'network error';
}
