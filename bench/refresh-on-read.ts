// The refresh-on-read pattern of LibreChat and LiteLLM, modelled on latchkey's store for the
// fleet bench: a token is refreshed only when a request finds it expired (within the same
// skew margin latchkey uses), by that request, under the credential's lease (their Redis
// lease); requests for the same user meanwhile wait for it (in this process: one promise per
// user; in others: the lease). It gets the same in-process cache a manager has, so the only
// difference from latchkey's pattern is when refreshes happen. The refresh itself is
// latchkey's own transaction (refresh.ts), so both patterns pay the same per-refresh cost.
import { isUsable } from '../src/credential/expiry.js';
import type { StoredCredential } from '../src/credential/model.js';
import { emptyStats, type EngineContext } from '../src/lifecycle/context.js';
import { DEFAULT_BACKOFF } from '../src/lifecycle/backoff.js';
import { newLeaseHolder } from '../src/lifecycle/lease.js';
import { refreshCredential, type RefreshStore } from '../src/lifecycle/refresh.js';
import { silentLogger } from '../src/log.js';
import type { CredentialStore } from '../src/store/contract.js';
import { benchKey } from './fleet-seed.js';

export interface ReadAnswer {
  token: string;
  /** This request sat behind a token request (its own, or another request's). */
  waited: boolean;
}

export class RefreshOnRead {
  readonly #ctx: EngineContext<RefreshStore>;
  readonly #cache = new Map<string, StoredCredential>();
  readonly #inFlight = new Map<string, Promise<{ cred: StoredCredential; refreshed: boolean }>>();

  constructor(
    readonly store: CredentialStore,
    readonly issuer: string,
  ) {
    this.#ctx = {
      store,
      holder: newLeaseHolder(),
      skewMs: 60_000,
      requestTimeoutMs: 30_000,
      leaseTtlMs: 45_000,
      waitTimeoutMs: 50_000,
      pollMs: 25,
      backoff: DEFAULT_BACKOFF,
      fetch: undefined,
      logger: silentLogger,
      stats: emptyStats(),
      sendResource: true,
      login: { supersedeAfterMs: 0, maxLoginsPerMinute: 0 },
      warn: () => undefined,
    };
  }

  get refreshRequests(): number {
    return this.#ctx.stats.refreshRequests;
  }

  async getToken(subject: string): Promise<ReadAnswer> {
    const cached = this.#cache.get(subject);
    if (cached !== undefined && this.#usable(cached))
      return { token: cached.secrets.accessToken, waited: false };
    // The store read is part of the flight, so two requests never both decide to refresh.
    let flight = this.#inFlight.get(subject);
    if (flight === undefined) {
      flight = this.#readOrRefresh(subject).finally(() => this.#inFlight.delete(subject));
      this.#inFlight.set(subject, flight);
    }
    const { cred, refreshed } = await flight;
    return { token: cred.secrets.accessToken, waited: refreshed };
  }

  async #readOrRefresh(subject: string): Promise<{ cred: StoredCredential; refreshed: boolean }> {
    const stored = await this.store.getCredential(benchKey(this.issuer, subject));
    if (stored === undefined) throw new Error(`no credential for ${subject}`);
    if (this.#usable(stored)) {
      this.#cache.set(subject, stored);
      return { cred: stored, refreshed: false };
    }
    const fresh = await refreshCredential(this.#ctx, stored, true);
    this.#cache.set(subject, fresh);
    return { cred: fresh, refreshed: true };
  }

  #usable(cred: StoredCredential): boolean {
    return isUsable(cred, Date.now(), this.#ctx.skewMs);
  }
}
