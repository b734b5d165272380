import { ErrorCode, LatchkeyError } from '../errors.js';
import { networkText } from '../network-text.js';
import type { NextAction } from '../next-action.js';
import { oversizeError } from './bounded-fetch.js';
import { classifyTokenFailure, type TokenFailure } from './token-error.js';

/**
 * The one translation of a failed request to an authorization server (a grant, a device
 * authorization, a registration) into a LatchkeyError. token-error.ts classifies what
 * oauth4webapi and fetch threw; this turns the classification into a code, words safe to
 * print and a next action. Each caller only says what it was doing and how a refusal reads.
 */

/** OAuth error codes are a restricted charset (RFC 6749 §5.2); anything else is not echoed back. */
export function safeCode(code: string): string {
  return /^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$/.test(code) ? code : 'an invalid error code';
}

/** Server-supplied text, made safe (network-text.ts), bounded and quoted. */
export function quoteDescription(text: string): string {
  return JSON.stringify(networkText(text, { maxLength: 200 }));
}

export type Transient = Extract<TokenFailure, { kind: 'transient' }>;

/** A refusal by the AS (an OAuth error that will not pass by itself), ready to be worded. */
export interface Refusal {
  kind: Exclude<TokenFailure['kind'], 'transient'>;
  /** The OAuth error code, safe to print. */
  code: string;
  /** `: "description"` when the AS sent one, else empty; safe to print. */
  description: string;
  cause: unknown;
}

export interface AsRequest {
  /** The server named in the error. */
  server: string;
  /** What failed, completed with the reason: `the device login failed` → `the device login failed (HTTP 503).` */
  what: string;
  /** Said when the caller's signal ended the request: `the device login was cancelled.` */
  cancelled: string;
  signal?: AbortSignal | undefined;
  /** The next action for a transient failure. Default: retry at the time the AS named, if any. */
  retryNext?: NextAction | undefined;
}

/**
 * `error` from a request to the AS, as a LatchkeyError: CANCELLED when the caller gave up,
 * RESPONSE_TOO_LARGE unchanged, RATE_LIMITED or AS_UNAVAILABLE when it may pass, and
 * `refusal`'s error otherwise.
 */
export function asRequestError(
  error: unknown,
  request: AsRequest,
  refusal: (refused: Refusal) => LatchkeyError,
): LatchkeyError {
  if (request.signal?.aborted === true) {
    return new LatchkeyError(ErrorCode.CANCELLED, request.cancelled, {
      server: request.server,
      retryable: false,
      cause: error,
    });
  }
  const oversize = oversizeError(error, request.server);
  if (oversize !== undefined) return oversize;
  const failure = classifyTokenFailure(error);
  if (failure.kind === 'transient') {
    return transientAsError(request.server, `${request.what} (${failure.reason}).`, failure, {
      next: request.retryNext,
      cause: error,
    });
  }
  return refusal({
    kind: failure.kind,
    code: safeCode(failure.error),
    description: failure.description === undefined ? '' : `: ${quoteDescription(failure.description)}`,
    cause: error,
  });
}

/**
 * A failure that may pass, outside a refresh: RATE_LIMITED when the AS asked us to wait
 * (429, or a Retry-After), with `retryAt` set from it; AS_UNAVAILABLE otherwise.
 */
export function transientAsError(
  server: string,
  message: string,
  failure: Pick<Transient, 'status' | 'retryAfterMs'>,
  options: { next?: NextAction | undefined; detail?: string; cause?: unknown } = {},
): LatchkeyError {
  const limited = failure.status === 429 || failure.retryAfterMs !== undefined;
  const retryAt = failure.retryAfterMs === undefined ? undefined : Date.now() + failure.retryAfterMs;
  return new LatchkeyError(limited ? ErrorCode.RATE_LIMITED : ErrorCode.AS_UNAVAILABLE, message, {
    server,
    retryable: true,
    retryAt,
    next: options.next ?? { kind: 'retry', server, retryAt, detail: options.detail },
    cause: options.cause,
  });
}
