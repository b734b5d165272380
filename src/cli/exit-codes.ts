import { ErrorCode, isLatchkeyError } from '../errors.js';

/**
 * Every exit status the CLI uses, decided here only, so scripts and MCP hosts can rely on
 * them. Stable across releases; the meaning of a failure beyond these classes is in the
 * message on stderr (and in `--json` output, the error `code`).
 */
export const ExitCode = {
  OK: 0,
  /**
   * A failure: network, AS outage or rate limit, an unfinished strict logout, store corrupt or
   * unusable, keyring unusable, client rejected, or a bug.
   */
  ERROR: 1,
  /** Bad command line or input. */
  USAGE: 2,
  /** The user must log in (again): `latchkey login <server>`. */
  LOGIN_REQUIRED: 4,
  /** Interrupted by the user, denied at the authorization server, or timed out waiting for them. */
  CANCELLED: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export function exitCodeFor(error: unknown): ExitCode {
  if (!isLatchkeyError(error)) return ExitCode.ERROR;
  switch (error.code) {
    case ErrorCode.LOGIN_REQUIRED:
      return ExitCode.LOGIN_REQUIRED;
    case ErrorCode.INVALID_INPUT:
      return ExitCode.USAGE;
    case ErrorCode.CANCELLED:
      return ExitCode.CANCELLED;
    // Retryable failures: a script tells them apart by the `code` in --json output.
    case ErrorCode.REFRESH_TRANSIENT:
    case ErrorCode.RATE_LIMITED:
    case ErrorCode.AS_UNAVAILABLE:
    case ErrorCode.LOGOUT_INCOMPLETE:
      return ExitCode.ERROR;
    default:
      return ExitCode.ERROR;
  }
}
