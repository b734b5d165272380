import { EventEmitter, on } from 'node:events';

import type { StoredCredential } from '../../credential/model.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../../errors.js';
import { ResponseLimits } from '../../oauth/bounded-fetch.js';
import { createTokenFetch } from '../../oauth/token-http.js';
import { backoffDelayMs } from '../backoff.js';
import { type EngineContext, emptyStats } from '../context.js';
import type { RefreshStore } from '../refresh.js';
import { type Attempt, refreshClaimed } from './attempt.js';
import { BatchedStore } from './batched-store.js';
import { claimBatch } from './claim.js';
import { ClientCache } from './client-cache.js';
import { emptyRefresherStats, type RefresherEvent, type RefresherStats } from './events.js';
import { IssuerGate } from './issuer-gate.js';
import { type RefresherOptions, type ResolvedRefresherOptions, resolveRefresherOptions } from './options.js';
import { Wakeup } from './wakeup.js';

export interface RefresherEvents {
  event: [RefresherEvent];
}

/**
 * Start a fleet refresher on `options.store`: one loop that claims due credentials from the
 * store's due index in batches, refreshes them through the lifecycle engine within per-issuer
 * limits, and sleeps until the next due time or a store change. Any number of instances may
 * share a store; claims are leases, so each credential is refreshed by one of them.
 * `close()` stops it, waits for refreshes in flight, and hands back unstarted claims.
 */
export function startRefresher(options: RefresherOptions): Refresher {
  return new Refresher(resolveRefresherOptions(options));
}

export class Refresher extends EventEmitter<RefresherEvents> {
  readonly #o: ResolvedRefresherOptions;
  readonly #ctx: EngineContext<RefreshStore>;
  readonly #batched: BatchedStore;
  readonly #clients: ClientCache;
  readonly #gates = new Map<string, IssuerGate>();
  /** Claimed, not yet started, per issuer. */
  readonly #queued = new Map<string, StoredCredential[]>();
  readonly #active = new Set<Promise<void>>();
  /** When each queued claim was made: its lease runs from then until extended. */
  readonly #claimedAt = new WeakMap<StoredCredential, number>();
  /** Claims whose expired lease was another holder's, and whose (see EngineContext.previousHolder). */
  readonly #takenOver = new WeakMap<StoredCredential, string>();
  readonly #stats = emptyRefresherStats();
  readonly #wakeup = new Wakeup();
  readonly #unwatch: () => void;
  readonly #done: Promise<void>;
  /** Aborted once close() has finished: ends every events() iterator. */
  readonly #stopped = new AbortController();
  #closed = false;
  #loopFailures = 0;

  constructor(options: ResolvedRefresherOptions) {
    super();
    this.#o = options;
    this.#batched = new BatchedStore(options.store, options.holder.owner, options.batchSize);
    this.#clients = new ClientCache(options.clientCacheMs);
    this.#ctx = engineContextFor(options, this.#batched.store, this.#clients, (error) =>
      this.#emit({ type: 'error', error }),
    );
    this.#unwatch = options.store.watch(() => this.#wakeup.wake(), { pollMs: options.watchPollMs });
    this.#done = this.#loop();
  }

  /** The lease identity of this instance's claims. */
  get owner(): string {
    return this.#o.holder.owner;
  }

  stats(): RefresherStats {
    return { ...this.#stats };
  }

  /** Credentials due now across the store (every instance's backlog, claimed or not): a metric to export. */
  backlog(): Promise<number> {
    return this.#o.store.countDue();
  }

  /** Every event from now until `close()`, as an async iterator. */
  async *events(): AsyncGenerator<RefresherEvent> {
    const signal = this.#stopped.signal;
    if (signal.aborted) return;
    try {
      for await (const [event] of on(this, 'event', { signal })) yield event as RefresherEvent;
    } catch (error) {
      if (!signal.aborted) throw error;
    }
  }

  /** Stop claiming, wait for refreshes in flight, release unstarted claims. Idempotent. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#unwatch();
      this.#wakeup.wake();
    }
    await this.#done;
    while (this.#active.size > 0) await Promise.allSettled([...this.#active]);
    await this.#returnQueued(() => true);
    this.#stopped.abort();
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      let sleepUntil: number;
      try {
        sleepUntil = await this.#pass();
        this.#loopFailures = 0;
      } catch (error) {
        sleepUntil = this.#loopFailed(error);
      }
      if (this.#closed) break;
      await this.#wakeup.sleepUntil(sleepUntil);
    }
  }

  /** One look at the due index: claim what may start, start it, say when to look again. */
  async #pass(): Promise<number> {
    const now = Date.now();
    const room = this.#o.maxConcurrency - this.#active.size - this.#queuedCount();
    let claimed: StoredCredential[] = [];
    const limit = Math.min(this.#o.batchSize, room);
    if (limit > 0) {
      const batch = await claimBatch(this.#o.store, {
        holder: this.#o.holder,
        ttlMs: this.#o.leaseTtlMs,
        limit,
        excludeIssuers: this.#blockedIssuers(now),
      });
      claimed = batch.claimed;
      this.#stats.leaseTakeovers += batch.takenOver.size;
      const at = Date.now();
      for (const cred of claimed) this.#claimedAt.set(cred, at);
      for (const [cred, owner] of batch.takenOver) this.#takenOver.set(cred, owner);
      await this.#observeRegistrations(claimed);
      this.#stats.claimed += claimed.length;
      await this.#enqueue(claimed);
    }
    this.#dispatch();
    // A full batch suggests more is due: look again at once (after the event loop breathes).
    if (limit > 0 && claimed.length === limit) return Date.now();
    return this.#nextLook(Date.now());
  }

  /** Read each claimed issuer's registration once for the batch (client-cache.ts says why). */
  async #observeRegistrations(claimed: StoredCredential[]): Promise<void> {
    for (const issuer of new Set(claimed.map((cred) => cred.key.issuer))) {
      // Unreadable now: the clients stay as they were; the refresh's own reads will tell.
      const registration = await this.#o.store.getRegistration(issuer).catch(() => null);
      if (registration !== null) this.#clients.observe(issuer, registration);
    }
  }

  /** Queue claims per issuer; keep only what its gate can start soon, hand the rest back. */
  async #enqueue(claimed: StoredCredential[]): Promise<void> {
    const extra: StoredCredential[] = [];
    for (const cred of claimed) {
      const queue = this.#queued.get(cred.key.issuer) ?? [];
      const gate = this.#gate(cred.key.issuer);
      if (gate.active + queue.length >= this.#o.perIssuerConcurrency) extra.push(cred);
      else this.#queued.set(cred.key.issuer, [...queue, cred]);
    }
    await this.#release(extra);
  }

  #dispatch(): void {
    for (const [issuer, queue] of this.#queued) {
      const gate = this.#gate(issuer);
      while (queue.length > 0 && !this.#closed && gate.canStart(Date.now())) {
        const cred = queue.shift();
        if (cred === undefined) break;
        gate.take(Date.now());
        this.#start(gate, cred);
      }
      if (queue.length === 0) this.#queued.delete(issuer);
    }
  }

  #start(gate: IssuerGate, cred: StoredCredential): void {
    const run = this.#attempt(cred)
      .then((attempt) => this.#settle(gate, cred, attempt))
      .catch((error: unknown) => this.#emit({ type: 'error', error: asError(error) }))
      .finally(() => {
        gate.done();
        this.#active.delete(run);
        this.#wakeup.wake();
      });
    this.#active.add(run);
  }

  /** The refresh, then the claim's lease released (with the other releases of the moment). */
  async #attempt(cred: StoredCredential): Promise<Attempt> {
    try {
      if (!(await this.#stillHeld(cred))) return { outcome: { kind: 'skipped' }, requests: 0 };
      return await refreshClaimed(this.#ctx, cred, this.#takenOver.get(cred));
    } finally {
      await this.#batched.release(cred.key).catch(() => undefined);
    }
  }

  /**
   * A claim that waited in its issuer's queue for a third of the lease time is checked before
   * its refresh starts (keepLease extends it from then on): the lease is taken again, and the
   * row read again. Had the lease lapsed, another instance may have refreshed the credential
   * meanwhile, and this one must not send the refresh token that refresh consumed.
   */
  async #stillHeld(cred: StoredCredential): Promise<boolean> {
    const claimedAt = this.#claimedAt.get(cred) ?? 0;
    if (Date.now() - claimedAt < this.#o.leaseTtlMs / 3) return true;
    const { store, holder, leaseTtlMs } = this.#o;
    if ((await store.acquireLease(cred.key, holder, leaseTtlMs)) === undefined) return false;
    return (await store.getCredential(cred.key))?.generation === cred.generation;
  }

  async #settle(gate: IssuerGate, cred: StoredCredential, attempt: Attempt): Promise<void> {
    const { outcome } = attempt;
    const about = { server: cred.key.server, issuer: cred.key.issuer, subject: cred.key.subject };
    this.#stats.refreshRequests += attempt.requests;
    switch (outcome.kind) {
      case 'refreshed':
      case 'adopted':
        gate.succeeded();
        this.#stats[outcome.kind]++;
        this.#emit({
          type: outcome.kind,
          ...about,
          generation: outcome.cred.generation,
          ...(outcome.kind === 'refreshed' && outcome.cred.expiresAt !== undefined
            ? { expiresAt: outcome.cred.expiresAt }
            : {}),
        });
        return;
      case 'skipped':
        return;
      case 'needs-login':
        this.#stats.needsLogin++;
        this.#emit({
          type: 'needs-login',
          ...about,
          error: outcome.error,
          reason: outcome.reason,
          ...(outcome.takenOverFrom === undefined ? {} : { takenOverFrom: outcome.takenOverFrom }),
        });
        return;
      case 'transient':
        this.#stats.transientFailures++;
        this.#emit({
          type: 'retrying',
          ...about,
          code: outcome.error.code,
          reason: outcome.error.message,
          retryAt: outcome.retryAt,
        });
        if (outcome.issuerFault !== undefined) await this.#pause(gate, cred.key.issuer, outcome);
    }
  }

  /** One AS throttling or failing: stop sending to it (only it), and hand back its queue. */
  async #pause(
    gate: IssuerGate,
    issuer: string,
    outcome: Extract<Attempt['outcome'], { kind: 'transient' }>,
  ): Promise<void> {
    const now = Date.now();
    const wasPaused = gate.paused(now);
    let until: number;
    if (outcome.issuerFault === 'rate-limited') {
      until = outcome.retryAt;
      gate.pauseUntil(until);
    } else {
      until = gate.failed(now);
    }
    if (!wasPaused) {
      this.#emit({ type: 'issuer-paused', issuer, until, reason: outcome.issuerFault ?? 'unavailable' });
    }
    await this.#returnQueued((i) => i === issuer);
  }

  /** Issuers this instance will not start anything at now: paused, saturated or out of tokens. */
  #blockedIssuers(now: number): string[] {
    const blocked: string[] = [];
    for (const [issuer, gate] of this.#gates) {
      const queued = this.#queued.get(issuer)?.length ?? 0;
      if (
        gate.paused(now) ||
        gate.active + queued >= this.#o.perIssuerConcurrency ||
        gate.readyAt(now) > now
      ) {
        blocked.push(issuer);
      }
    }
    return blocked;
  }

  /** When to look at the due index again, absent a wake-up (a store change or a finished refresh). */
  async #nextLook(now: number): Promise<number> {
    let next = now + this.#o.maxSleepMs;
    // A blocked issuer's gate reopens on its own at the end of a pause or with the next
    // bucket token (a full one reopens when a refresh finishes, which wakes the loop).
    for (const gate of this.#gates.values()) {
      const ready = gate.readyAt(now);
      if (ready > now) next = Math.min(next, ready);
    }
    // Work at the other issuers: due already (it came due since the claim) means look again now.
    const due = await this.#o.store.nextDueAt({ excludeIssuers: this.#blockedIssuers(now) });
    return due === undefined ? next : Math.min(next, Math.max(due, now));
  }

  async #returnQueued(match: (issuer: string) => boolean): Promise<void> {
    const back: StoredCredential[] = [];
    for (const [issuer, queue] of this.#queued) {
      if (!match(issuer)) continue;
      back.push(...queue);
      this.#queued.delete(issuer);
    }
    await this.#release(back);
  }

  async #release(creds: StoredCredential[]): Promise<void> {
    this.#stats.returned += creds.length;
    if (creds.length === 0) return;
    const keys = creds.map((cred) => cred.key);
    await this.#o.store.releaseLeases(keys, this.#o.holder.owner).catch(() => undefined);
  }

  #loopFailed(error: unknown): number {
    this.#loopFailures++;
    this.#emit({ type: 'error', error: asError(error) });
    return Date.now() + backoffDelayMs(this.#loopFailures, this.#o.backoff);
  }

  #gate(issuer: string): IssuerGate {
    let gate = this.#gates.get(issuer);
    if (gate === undefined) {
      gate = new IssuerGate(
        {
          concurrency: this.#o.perIssuerConcurrency,
          ratePerSecond: this.#o.perIssuerRatePerSecond,
          burst: this.#o.perIssuerBurst,
          backoff: this.#o.backoff,
        },
        Date.now(),
      );
      this.#gates.set(issuer, gate);
    }
    return gate;
  }

  #queuedCount(): number {
    let n = 0;
    for (const queue of this.#queued.values()) n += queue.length;
    return n;
  }

  #emit(event: RefresherEvent): void {
    if (event.type === 'error') this.#o.logger.warn('refresher problem', { error: event.error });
    this.emit('event', event);
  }
}

function engineContextFor(
  o: ResolvedRefresherOptions,
  store: RefreshStore,
  clients: ClientCache,
  warn: (error: LatchkeyError) => void,
): EngineContext<RefreshStore> {
  return {
    store,
    clients,
    holder: o.holder,
    skewMs: o.skewMs,
    requestTimeoutMs: o.requestTimeoutMs,
    leaseTtlMs: o.leaseTtlMs,
    // The refresher never waits for another holder: it only refreshes what it claimed.
    waitTimeoutMs: 0,
    pollMs: 25,
    backoff: o.backoff,
    // Token answers read whole on node:http unless the caller brings a fetch (token-http.ts).
    fetch: o.fetch ?? createTokenFetch(ResponseLimits.endpoint),
    logger: o.logger,
    stats: emptyStats(),
    sendResource: o.sendResource,
    login: { supersedeAfterMs: 0, maxLoginsPerMinute: 0 },
    keepLeaseAlive: true,
    warn,
  };
}

function asError(error: unknown): LatchkeyError {
  if (isLatchkeyError(error)) return error;
  return new LatchkeyError(ErrorCode.STORE_UNAVAILABLE, 'the refresher could not use the store.', {
    retryable: true,
    cause: error,
  });
}
