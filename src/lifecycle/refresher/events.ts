import type { ErrorCode, LatchkeyError } from '../../errors.js';

/** Which credential an event is about: the application's user is `subject`. */
interface About {
  server: string;
  issuer: string;
  subject: string;
}

/**
 * What a refresher reports, as data (the library never words a next step for a CLI). Store
 * events are appended as well, so other processes (and Postgres NOTIFY listeners) see the
 * same facts; these are for the embedding application.
 */
export type RefresherEvent =
  /** This instance refreshed the credential: a new generation reached the store. */
  | (About & { type: 'refreshed'; generation: number; expiresAt?: number })
  /** Someone else refreshed it first; this instance adopted their generation. */
  | (About & { type: 'adopted'; generation: number })
  /** A transient failure: nothing deleted, the next attempt is due at `retryAt`. */
  | (About & { type: 'retrying'; code: ErrorCode; reason: string; retryAt?: number })
  /**
   * A permanent failure: the credential is marked needs-login and will not be tried again
   * until the user logs in. `error` is the OAuth error (`invalid_grant`, `invalid_client`)
   * or `no_refresh_token`; `reason` is a sanitized sentence. Ask that user to reconnect.
   */
  | (About & {
      type: 'needs-login';
      error: string;
      reason: string;
      /**
       * The instance whose expired lease this one took over before the AS rejected the
       * refresh token: it most likely spent the token and died before storing the answer
       * (the in-flight window of a kill -9). The user must log in again either way.
       */
      takenOverFrom?: string;
    })
  /** This instance stopped sending to an issuer until `until` (Retry-After, or an outage's backoff). */
  | { type: 'issuer-paused'; issuer: string; until: number; reason: 'rate-limited' | 'unavailable' }
  /** The loop itself failed (e.g. the store was unavailable); it retries with backoff. */
  | { type: 'error'; error: LatchkeyError };

export type RefresherEventType = RefresherEvent['type'];

/** Counters of one refresher instance, for status, tests and benchmarks. */
export interface RefresherStats {
  /** Credentials this instance claimed from the due index. */
  claimed: number;
  /** Refresh requests this instance sent to authorization servers. */
  refreshRequests: number;
  refreshed: number;
  adopted: number;
  transientFailures: number;
  needsLogin: number;
  /** Claims handed back unrefreshed (their issuer paused or saturated), for another pass. */
  returned: number;
  /** Claims whose expired lease was another instance's (it crashed or stalled mid-claim). */
  leaseTakeovers: number;
}

export function emptyRefresherStats(): RefresherStats {
  return {
    claimed: 0,
    refreshRequests: 0,
    refreshed: 0,
    adopted: 0,
    transientFailures: 0,
    needsLogin: 0,
    returned: 0,
    leaseTakeovers: 0,
  };
}
