import { ErrorCode, LatchkeyError } from '../errors.js';
import { loginAction } from '../next-action.js';

const WINDOW_MS = 10 * 60_000;
/** After a failed attempt, automatic retries wait this long (a user-started login does not). */
const COOLDOWN_MS = 30_000;

/**
 * The storm breaker for interactive logins. A host that retries every failed request must
 * not open a browser tab per retry: after a failure, attempts for that server are refused
 * for a cooldown, and after `maxAttempts` in ten minutes until one succeeds or the user
 * starts a login explicitly, which uses a fresh breaker.
 */
export class LoginBreaker {
  readonly #attempts = new Map<string, { at: number[]; lastFailureAt?: number }>();

  constructor(private readonly maxAttempts: number) {}

  admit(server: string, now = Date.now()): void {
    const state = this.#attempts.get(server) ?? { at: [] };
    state.at = state.at.filter((t) => now - t < WINDOW_MS);
    if (state.at.length >= this.maxAttempts) {
      throw refused(server, `${state.at.length} interactive logins were attempted in the last 10 minutes`);
    }
    if (state.lastFailureAt !== undefined && now - state.lastFailureAt < COOLDOWN_MS) {
      throw refused(server, 'the last login attempt failed moments ago');
    }
    state.at.push(now);
    this.#attempts.set(server, state);
  }

  failed(server: string, now = Date.now()): void {
    const state = this.#attempts.get(server);
    if (state !== undefined) state.lastFailureAt = now;
  }

  succeeded(server: string): void {
    this.#attempts.delete(server);
  }
}

function refused(server: string, why: string): LatchkeyError {
  return new LatchkeyError(ErrorCode.LOGIN_REQUIRED, `not starting another login automatically: ${why}.`, {
    server,
    retryable: false,
    next: loginAction(server),
  });
}
