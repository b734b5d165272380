import { ErrorCode, isLatchkeyError } from '../errors.js';

/**
 * Every exit status the CLI uses, decided here only, so scripts and MCP hosts can rely on
 * them. Stable across releases.
 */
export const ExitCode = {
  OK: 0,
  /** An unexpected failure (a bug, or an error latchkey did not classify). */
  FAILURE: 1,
  /** Bad command line or input. */
  USAGE: 2,
  /** The user must log in (again): `latchkey login <server>`. */
  LOGIN_REQUIRED: 3,
  /** A transient failure (network, AS outage, throttling, a wait that timed out); retry later. */
  TRANSIENT: 4,
  /** The credential store or OS keyring cannot be used. */
  STORE: 5,
  /** The authorization server rejected latchkey's client registration. */
  CLIENT_REJECTED: 6,
  /** Interrupted by the user (Ctrl-C) or cancelled. */
  CANCELLED: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export function exitCodeFor(error: unknown): ExitCode {
  if (!isLatchkeyError(error)) return ExitCode.FAILURE;
  switch (error.code) {
    case ErrorCode.LOGIN_REQUIRED:
      return ExitCode.LOGIN_REQUIRED;
    case ErrorCode.REFRESH_TRANSIENT:
    case ErrorCode.WAIT_TIMEOUT:
      return ExitCode.TRANSIENT;
    case ErrorCode.STORE_UNAVAILABLE:
    case ErrorCode.STORE_KEY_MISMATCH:
    case ErrorCode.KEYRING_UNAVAILABLE:
      return ExitCode.STORE;
    case ErrorCode.CLIENT_REJECTED:
      return ExitCode.CLIENT_REJECTED;
    case ErrorCode.INVALID_INPUT:
      return ExitCode.USAGE;
    case ErrorCode.CANCELLED:
      return ExitCode.CANCELLED;
    default:
      return error.retryable ? ExitCode.TRANSIENT : ExitCode.FAILURE;
  }
}
