/**
 * What a failed attempt at a host request means, as a pure decision table. The connection
 * turns what the wire threw into a `Failure`, describes where the request stands in a
 * `RecoveryState`, and carries out the `Decision`; nothing here sends, waits or logs.
 */
import { ErrorCode, isLatchkeyError } from '../errors.js';
import { backoffDelayMs, type BackoffPolicy } from '../lifecycle/backoff.js';
import { isModernRefusal } from './era-bridge.js';
import type { JsonRpcError } from './jsonrpc.js';
import { ModernErrorCode } from './request-metadata.js';
import { MessageTooLargeError } from './sse.js';
import { HttpStatusError, isConnectRefused, StreamBrokenError } from './wire-errors.js';

/** What went wrong, sorted by what may be done about it. */
export type Failure =
  | { readonly kind: 'message-too-large'; readonly limit: number }
  | { readonly kind: 'login-required' }
  | {
      readonly kind: 'http-status';
      readonly status: number;
      /** The server no longer knows the session the request carried (404). */
      readonly sessionExpired: boolean;
      readonly retryAfterMs?: number | undefined;
      /** The JSON-RPC error in the body, when there was one (2026-07-28 servers send them). */
      readonly rpc?: JsonRpcError | undefined;
    }
  | { readonly kind: 'stream-broken'; readonly garbage: boolean; readonly retryMs?: number | undefined }
  /** No connection could be made: nothing reached the server. */
  | { readonly kind: 'connect-refused' }
  /** fetch failed on the way (a TypeError): the server may or may not have the request. */
  | { readonly kind: 'network' }
  | { readonly kind: 'other' };

/** Where the request stands, and what the connection knows, when it failed. */
export interface RecoveryState {
  /** Attempts made before this one (0 on the first failure). */
  readonly round: number;
  readonly method: string;
  /** A 2026-07-28 request (sessionless; a broken stream re-issues it under a new id). */
  readonly modern: boolean;
  /** latchkey's own request (a re-handshake, a listen stream): it never starts a login. */
  readonly internal: boolean;
  readonly loggedOut: boolean;
  /** A login can be run (the connection has an authorizer). */
  readonly canLogin: boolean;
  /** A 2025-era host may be bridged to a 2026-only server (protocol is not `legacy`). */
  readonly mayBridge: boolean;
  /** Running the request twice is harmless (replay-policy.ts). */
  readonly repeatable: boolean;
  /** `tools/list` was already read again for this request's HeaderMismatch. */
  readonly relearned: boolean;
  /** Streamable HTTP, the handshake done once, and no session now (a re-handshake failed). */
  readonly sessionLost: boolean;
  /** The request was cancelled or answered while it failed. */
  readonly aborted: boolean;
}

/** How long to wait before the next attempt. */
export type Wait = 'now' | 'backoff' | { readonly ms: number };

/** Why the host gets an error instead of another attempt. */
export type FailWith =
  /** The failure itself, in the words rpc-errors.ts has for it. */
  | 'failure'
  /** The server may have run the request and it must not run twice. */
  | 'lost-in-flight'
  | 'message-too-large'
  /** The 2026-07-28 server's JSON-RPC refusal, as it sent it. */
  | 'refusal';

export type Decision =
  | {
      readonly action: 'retry';
      readonly wait: Wait;
      /** Read tools/list again first (the server's `x-mcp-header` annotations changed). */
      readonly relearnTools?: true;
      /** Forget the session id first (an `initialize` that met an expired session). */
      readonly dropSession?: true;
      /** Start a new session in the background; the next attempt waits for it. */
      readonly renewSession?: string;
    }
  /** Make a new session from the host's handshake, then send again. */
  | { readonly action: 're-handshake'; readonly reason: string }
  /** Run a login, then send again. */
  | { readonly action: 'login' }
  /** Answer the host's 2025-era `initialize` by bridging it to 2026-07-28. */
  | { readonly action: 'bridge' }
  | { readonly action: 'fail'; readonly answer: FailWith; readonly renewSession?: string };

export const SESSION_EXPIRED = 'session expired (HTTP 404)';
export const GARBAGE = 'undecodable data on a stream';

/** The internal signals of the wire and the manager, as one typed value. */
export function classifyFailure(error: unknown): Failure {
  if (error instanceof MessageTooLargeError) return { kind: 'message-too-large', limit: error.limit };
  if (isLatchkeyError(error) && error.code === ErrorCode.LOGIN_REQUIRED) return { kind: 'login-required' };
  if (error instanceof HttpStatusError) {
    const { status, sessionExpired, retryAfterMs, rpcError } = error;
    return { kind: 'http-status', status, sessionExpired, retryAfterMs, rpc: rpcError };
  }
  if (error instanceof StreamBrokenError)
    return { kind: 'stream-broken', garbage: error.garbage, retryMs: error.retryMs };
  if (isConnectRefused(error)) return { kind: 'connect-refused' };
  if (error instanceof TypeError) return { kind: 'network' };
  return { kind: 'other' };
}

const FAIL: Decision = { action: 'fail', answer: 'failure' };

export function decideRecovery(failure: Failure, state: RecoveryState): Decision {
  switch (failure.kind) {
    case 'message-too-large':
      // Sending it again would only bring the same answer.
      return { action: 'fail', answer: 'message-too-large' };
    case 'login-required':
      // latchkey's own requests never start a login; the host's next request may.
      if (state.loggedOut || !state.canLogin || state.round > 1 || state.internal) return FAIL;
      return { action: 'login' };
    case 'http-status':
      return decideStatus(failure, state);
    case 'stream-broken':
      return decideBrokenStream(failure, state);
    case 'connect-refused':
      // Nothing reached the server; it may be restarting.
      return { action: 'retry', wait: 'backoff' };
    case 'network':
      if (state.aborted) return FAIL;
      if (state.modern || state.repeatable) return { action: 'retry', wait: 'backoff' };
      return { action: 'fail', answer: 'lost-in-flight' };
    case 'other':
      return FAIL;
  }
}

type StatusFailure = Extract<Failure, { kind: 'http-status' }>;

function decideStatus(failure: StatusFailure, state: RecoveryState): Decision {
  const { status } = failure;
  if (
    state.method === 'initialize' &&
    !state.modern &&
    state.mayBridge &&
    isModernRefusal(status, failure.rpc)
  ) {
    return { action: 'bridge' };
  }
  // A refusal in words (4xx); 429 and 5xx are waited out like any other.
  const refused = status >= 400 && status < 500 && status !== 429;
  if (state.modern && failure.rpc !== undefined && refused) return decideModernRefusal(failure.rpc, state);
  if (failure.sessionExpired) {
    if (state.method === 'initialize') return { action: 'retry', wait: 'now', dropSession: true };
    return { action: 're-handshake', reason: SESSION_EXPIRED };
  }
  if (status === 429 || status === 503) {
    return {
      action: 'retry',
      wait: failure.retryAfterMs === undefined ? 'backoff' : { ms: failure.retryAfterMs },
    };
  }
  // Our session was dropped (a failed re-handshake); make one before trying again.
  if (status === 400 && state.sessionLost) return { action: 're-handshake', reason: 'no session' };
  if (status >= 500 && state.repeatable) return { action: 'retry', wait: 'backoff' };
  return FAIL;
}

/**
 * A HeaderMismatch on tools/call may mean the tool's `x-mcp-header` annotations changed (or
 * were never read): the spec says to read tools/list and try again, once. Any other refusal
 * is the host's to see.
 */
function decideModernRefusal(rpc: JsonRpcError, state: RecoveryState): Decision {
  const mismatch = rpc.code === ModernErrorCode.HEADER_MISMATCH && state.method === 'tools/call';
  if (!mismatch || state.relearned) return { action: 'fail', answer: 'refusal' };
  return { action: 'retry', wait: 'now', relearnTools: true };
}

function decideBrokenStream(
  failure: Extract<Failure, { kind: 'stream-broken' }>,
  state: RecoveryState,
): Decision {
  const wait = hinted(failure.retryMs);
  // 2026-07-28 (TR-32): a broken stream lost the request, and closing it cancelled it at the
  // server; the client re-issues it under a new id.
  if (state.modern) return { action: 'retry', wait };
  const renew = failure.garbage ? { renewSession: GARBAGE } : {};
  if (!state.repeatable) return { action: 'fail', answer: 'lost-in-flight', ...renew };
  return { action: 'retry', wait, ...renew };
}

function hinted(serverRetryMs: number | undefined): Wait {
  return serverRetryMs === undefined ? 'backoff' : { ms: Math.min(serverRetryMs, MAX_HINT_MS) };
}

/** A server's `retry:` hint is followed up to this long. */
const MAX_HINT_MS = 30_000;

/** Retries on the MCP wire: 50–100 ms at first, doubling, up to 2.5–5 s. */
const MCP_BACKOFF: BackoffPolicy = {
  initialMs: 75,
  maxMs: 3750,
  factor: 2,
  jitter: 1 / 3,
  demandIntervalMs: 0,
};

/** The delay before attempt `attempt + 1`; a server's `retry:` hint wins. */
export function retryDelayMs(attempt: number, serverRetryMs?: number): number {
  if (serverRetryMs !== undefined) return Math.min(serverRetryMs, MAX_HINT_MS);
  return backoffDelayMs(attempt + 1, MCP_BACKOFF);
}

export function waitMs(wait: Wait, round: number): number {
  if (wait === 'now') return 0;
  return wait === 'backoff' ? retryDelayMs(round) : wait.ms;
}
