import type { StoredCredential } from '../credential/model.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import type { EngineContext } from './context.js';
import { DueQueue } from './due-queue.js';
import { refreshCredential, refreshFlightKey } from './refresh.js';
import type { SingleFlight } from './single-flight.js';
import { type CacheEntry, seenCredential, type TokenCache } from './token-cache.js';

/** Spacing of background attempts started from the hot path or after a deferred attempt. */
export const BACKGROUND_THROTTLE_MS = 250;

export interface BackgroundRefreshOptions {
  ctx: EngineContext;
  /** Shared with on-demand refreshes, so a caller joins a background attempt in flight. */
  refreshes: SingleFlight<StoredCredential>;
  cache: TokenCache;
  /** Whether the schedule runs at all (`proactiveRefresh`); hot-path starts run regardless. */
  timers: boolean;
  /** Most background attempts in flight at once; due entries wait in the queue beyond it. */
  maxConcurrent: number;
  /** First backoff step, used when a retryable failure names no retry time. */
  initialBackoffMs: number;
}

/**
 * Proactive refresh (rule 3 in docs/architecture.md): every cached credential waits in one
 * queue ordered by its proactive point, behind a single timer (no timer per credential),
 * and attempts never wait for another process. At most `maxConcurrent` run at once, so
 * credentials that all fell due together (after sleep, or issued together) go out at a
 * steady pace. Results land in the cache; failures are warnings, because no caller is
 * waiting for them.
 */
export class BackgroundRefresh {
  readonly #o: BackgroundRefreshOptions;
  readonly #queue: DueQueue<CacheEntry>;
  #running = 0;
  #closed = false;

  constructor(options: BackgroundRefreshOptions) {
    this.#o = options;
    this.#queue = new DueQueue<CacheEntry>({
      fire: (entry) => this.start(entry),
      ready: () => this.#running < this.#o.maxConcurrent,
    });
  }

  /** Entries waiting for their proactive point. */
  get scheduled(): number {
    return this.#queue.size;
  }

  schedule(entry: CacheEntry, at: number): void {
    if (!this.#o.timers || this.#closed || !entry.refreshable) return;
    this.#queue.schedule(entry, at);
  }

  /** The entry left the cache: it must never fire. */
  unschedule(entry: CacheEntry): void {
    this.#queue.remove(entry);
  }

  /** Start an attempt for `entry` unless one for its credential is already running. */
  start(entry: CacheEntry): void {
    if (this.#closed) return;
    entry.nextBackgroundAt = Date.now() + BACKGROUND_THROTTLE_MS;
    const seen = seenCredential(entry);
    const key = refreshFlightKey(seen);
    if (this.#o.refreshes.current(key) !== undefined) return;
    this.#running++;
    this.#o.refreshes
      .run(key, () => refreshCredential(this.#o.ctx, seen, false))
      .then(
        (fresh) => this.#succeeded(entry, fresh),
        (error: unknown) => this.#failed(entry, error),
      )
      .finally(() => {
        this.#running--;
        this.#queue.wake();
      });
  }

  close(): void {
    this.#closed = true;
    this.#queue.close();
  }

  #succeeded(entry: CacheEntry, fresh: StoredCredential): void {
    if (fresh.generation !== entry.token.generation) {
      // An entry evicted or forgotten meanwhile stays out: the store has the new tokens.
      if (this.#o.cache.holds(entry)) this.#o.cache.remember(fresh);
      return;
    }
    // Another process holds the lease; its result arrives through the watch. Check back soon.
    if (this.#o.cache.holds(entry)) this.schedule(entry, Date.now() + BACKGROUND_THROTTLE_MS);
  }

  #failed(entry: CacheEntry, error: unknown): void {
    const latchkey = isLatchkeyError(error)
      ? error
      : new LatchkeyError(ErrorCode.REFRESH_TRANSIENT, 'background refresh failed unexpectedly.', {
          server: entry.token.server,
          retryable: true,
          cause: error,
        });
    this.#o.ctx.warn(latchkey);
    if (!latchkey.retryable) {
      this.#o.cache.forget(seenCredential(entry).key);
      return;
    }
    if (this.#o.cache.holds(entry)) {
      // Once the token is unusable, callers drive on-demand refreshes themselves; the timer
      // only keeps background attempts going at the backoff's pace.
      const retryAt = latchkey.retryAt ?? Date.now() + this.#o.initialBackoffMs;
      this.schedule(entry, Math.max(retryAt, Date.now() + BACKGROUND_THROTTLE_MS));
    }
  }
}
