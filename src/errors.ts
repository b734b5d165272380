/**
 * Typed errors. Every error latchkey raises says which server it concerns, whether trying
 * again later can help, and what the user should do next. Codes are stable strings: match
 * on `code`, never on `message`.
 */

import { MESSAGE_MAX, networkText } from './network-text.js';
import { describeNextAction, loginAction, type NextAction } from './next-action.js';

export type { NextAction, NextActionKind } from './next-action.js';

const BRAND = Symbol.for('latchkey.error');

export const ErrorCode = {
  /** No usable credential; an interactive login is needed. Permanent until the user acts. */
  LOGIN_REQUIRED: 'LOGIN_REQUIRED',
  /**
   * A token refresh failed for a reason that may pass (network, 5xx, timeout); the stored
   * credential is kept. `retryAt` says when another attempt is allowed.
   */
  REFRESH_TRANSIENT: 'REFRESH_TRANSIENT',
  /**
   * The authorization server asked latchkey to slow down (HTTP 429, or a `Retry-After`), in a
   * refresh, a login, a registration or a client credentials grant. `retryAt` is when it said
   * to come back; nothing is retried before then.
   */
  RATE_LIMITED: 'RATE_LIMITED',
  /**
   * An authorization server (or, during discovery, the MCP server's metadata endpoint) could
   * not be reached, timed out, or answered with a server error while discovering, registering
   * or logging in. Nothing was changed; retrying later may succeed.
   */
  AS_UNAVAILABLE: 'AS_UNAVAILABLE',
  /**
   * A strict logout kept the stored credential because revoking its tokens at the
   * authorization server failed for a reason that may pass (unreachable, 5xx, 429). Logging
   * out again later retries it. (A best-effort logout does not throw: it deletes the local
   * copy and queues the revocation.)
   */
  LOGOUT_INCOMPLETE: 'LOGOUT_INCOMPLETE',
  /** Waiting for another process's refresh or login took longer than allowed. */
  WAIT_TIMEOUT: 'WAIT_TIMEOUT',
  /** The authorization server rejected our client (invalid_client, unauthorized_client). */
  CLIENT_REJECTED: 'CLIENT_REJECTED',
  /** The store could not be opened, read or written. */
  STORE_UNAVAILABLE: 'STORE_UNAVAILABLE',
  /**
   * A store file is damaged (a data-key file that is not a key, a truncated or foreign
   * database). Nothing is deleted; the message names the file.
   */
  STORE_CORRUPT: 'STORE_CORRUPT',
  /** Stored secrets cannot be decrypted with the data key we hold (keyring reset, wrong LATCHKEY_KEY). */
  STORE_KEY_MISMATCH: 'STORE_KEY_MISMATCH',
  /** The OS keyring did not answer in time or refused the request. */
  KEYRING_UNAVAILABLE: 'KEYRING_UNAVAILABLE',
  /** Configuration or input is invalid (bad URL, bad LATCHKEY_KEY, ...). */
  INVALID_INPUT: 'INVALID_INPUT',
  /** The operation was cancelled by the caller (AbortSignal). */
  CANCELLED: 'CANCELLED',
  /** The authorization server's metadata is missing something latchkey needs. */
  DISCOVERY_FAILED: 'DISCOVERY_FAILED',
  /** The MCP server could not be reached, refused the request, or answered with an error. */
  MCP_FAILED: 'MCP_FAILED',
  /** A server's answer (or a token in it) was larger than latchkey accepts; nothing from it was kept. */
  RESPONSE_TOO_LARGE: 'RESPONSE_TOO_LARGE',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface LatchkeyErrorOptions {
  /** The canonical server URI the error concerns, when there is one. */
  server?: string | undefined;
  /** Whether retrying later, without user action, may succeed. */
  retryable: boolean;
  /** What should happen next, as data; each face words it (src/next-action.ts). */
  next?: NextAction | undefined;
  /** For transient failures: the earliest moment (epoch ms) a retry makes sense. */
  retryAt?: number | undefined;
  cause?: unknown;
}

export class LatchkeyError extends Error {
  readonly code: ErrorCode;
  readonly server: string | undefined;
  readonly retryable: boolean;
  readonly next: NextAction | undefined;
  readonly retryAt: number | undefined;

  constructor(code: ErrorCode, message: string, options: LatchkeyErrorOptions) {
    super(withContext(message, options), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LatchkeyError';
    this.code = code;
    this.server = options.server;
    this.retryable = options.retryable;
    this.next = options.next;
    this.retryAt = options.retryAt;
    // `cause` may hold a Response or a library error that carries request bodies; keep it off
    // enumerable properties so JSON.stringify/console of the error does not dump it.
    if (options.cause !== undefined) {
      Object.defineProperty(this, 'cause', { value: options.cause, enumerable: false, writable: true });
    }
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** The next action in the library's own words (no CLI commands). */
  get nextStep(): string | undefined {
    return this.next === undefined ? undefined : describeNextAction(this.next);
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      server: this.server,
      retryable: this.retryable,
      next: this.next,
      nextStep: this.nextStep,
      retryAt: this.retryAt,
    };
  }
}

/**
 * Messages often carry words from the network (an AS's error description, an MCP server's
 * error body) and are printed, logged, stored and relayed: every one goes through the
 * network-text policy, whichever path built it. The message says what happened; the next
 * action is not in it, so that each face words it (the CLI appends its own command).
 */
function withContext(message: string, options: LatchkeyErrorOptions): string {
  const text = options.server === undefined ? message : `${options.server}: ${message}`;
  return networkText(text, { maxLength: MESSAGE_MAX });
}

/** Works across duplicate copies of the package in one process, unlike `instanceof`. */
export function isLatchkeyError(value: unknown): value is LatchkeyError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

export function loginRequired(server: string, reason: string, cause?: unknown): LatchkeyError {
  return new LatchkeyError(ErrorCode.LOGIN_REQUIRED, `login required: ${reason}.`, {
    server,
    retryable: false,
    next: loginAction(server),
    cause,
  });
}

/**
 * A refresh that failed for a reason that may pass. `rateLimited`: the AS asked us to wait
 * (RATE_LIMITED, `retryAt` is its time); otherwise REFRESH_TRANSIENT.
 */
export function refreshTransient(
  server: string,
  reason: string,
  retryAt: number,
  options: { rateLimited?: boolean; cause?: unknown } = {},
): LatchkeyError {
  return new LatchkeyError(
    options.rateLimited === true ? ErrorCode.RATE_LIMITED : ErrorCode.REFRESH_TRANSIENT,
    `token refresh failed temporarily (${reason}); the stored credential is kept and will be retried.`,
    {
      server,
      retryable: true,
      retryAt,
      next: {
        kind: 'retry',
        server,
        retryAt,
        detail: 'wait and retry; if it persists, check the authorization server or network',
      },
      cause: options.cause,
    },
  );
}
