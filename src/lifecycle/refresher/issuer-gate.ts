import { backoffDelayMs, type BackoffPolicy } from '../backoff.js';

export interface IssuerLimits {
  concurrency: number;
  ratePerSecond: number;
  burst: number;
  backoff: BackoffPolicy;
}

/**
 * What one instance may send to one authorization server right now: a concurrency cap, a
 * token bucket, and a pause (the AS's Retry-After, or backoff while it is failing). Pauses
 * are per issuer, so one AS that is down or throttling never holds back another.
 */
export class IssuerGate {
  active = 0;
  #tokens: number;
  #refilledAt: number;
  #pausedUntil = 0;
  #failures = 0;

  constructor(
    private readonly limits: IssuerLimits,
    now: number,
  ) {
    this.#tokens = limits.burst;
    this.#refilledAt = now;
  }

  /** Whether a refresh may start at `now`; `take` it before starting. */
  canStart(now: number): boolean {
    this.#refill(now);
    return now >= this.#pausedUntil && this.active < this.limits.concurrency && this.#tokens >= 1;
  }

  take(now: number): void {
    this.#refill(now);
    this.#tokens -= 1;
    this.active++;
  }

  done(): void {
    this.active--;
  }

  paused(now: number): boolean {
    return now < this.#pausedUntil;
  }

  /**
   * When `canStart` may next turn true without a refresh finishing: the end of a pause, or
   * the next bucket token. Infinity when only a finishing refresh (a free slot) can help.
   */
  readyAt(now: number): number {
    this.#refill(now);
    if (now < this.#pausedUntil) return this.#pausedUntil;
    if (this.#tokens < 1) return now + Math.ceil(((1 - this.#tokens) * 1000) / this.limits.ratePerSecond);
    return this.active < this.limits.concurrency ? now : Number.POSITIVE_INFINITY;
  }

  /** The AS said when to come back (429 / 503 with Retry-After). */
  pauseUntil(until: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, until);
  }

  /** A transient failure at this AS: pause it with backoff, so an outage is probed, not hammered. */
  failed(now: number): number {
    // Refreshes that were in flight together fail together: one step of backoff per pause.
    if (now < this.#pausedUntil) return this.#pausedUntil;
    this.#failures++;
    const until = now + backoffDelayMs(this.#failures, this.limits.backoff);
    this.pauseUntil(until);
    return until;
  }

  succeeded(): void {
    this.#failures = 0;
  }

  #refill(now: number): void {
    const elapsed = Math.max(0, now - this.#refilledAt);
    this.#tokens = Math.min(this.limits.burst, this.#tokens + (elapsed * this.limits.ratePerSecond) / 1000);
    this.#refilledAt = now;
  }
}
