import { randomUUID } from 'node:crypto';

import { dueAt, refreshPointAt } from '../credential/due.js';
import { keyId, type CredentialKey } from '../credential/key.js';
import type { CredentialRecord, CredentialStatus, StoredCredential } from '../credential/model.js';
import { ErrorCode, LatchkeyError } from '../errors.js';
import type {
  ClaimedRevocation,
  CredentialFilter,
  CredentialStore,
  DiscoveryKind,
  DiscoveryRecord,
  DueClaim,
  EventInput,
  EventQuery,
  Lease,
  LeaseHolder,
  LifecycleEvent,
  NewPendingRevocation,
  PendingRevocation,
  RevocationClaim,
  RevocationSchedule,
  Registration,
  DPoPKeyRecord,
  StoreSecurity,
  WriteCondition,
  WriteResult,
  CredentialWrite,
} from './contract.js';
import { type Refusal, refusal } from './condition.js';

/**
 * A store that lives and dies with the process: for tests, for short-lived tools that are
 * handed tokens, and for gateways that keep their own persistence. Values are copied in and
 * out, so callers can never mutate stored state by accident.
 */
export function createMemoryStore(): CredentialStore {
  return new MemoryStore();
}

const VALID: CredentialStatus = { state: 'valid', failures: 0 };

class MemoryStore implements CredentialStore {
  readonly kind = 'memory' as const;
  readonly security: StoreSecurity = { keySource: 'none', insecure: false, location: 'memory' };
  private readonly credentials = new Map<string, StoredCredential>();
  private readonly registrations = new Map<string, Registration>();
  private readonly dpopKeys = new Map<string, DPoPKeyRecord>();
  private readonly discovery = new Map<string, DiscoveryRecord>();
  private readonly leases = new Map<string, Lease>();
  private readonly events: LifecycleEvent[] = [];
  private readonly revocations = new Map<string, ClaimedRevocation & { claim?: Claim }>();
  private readonly listeners = new Set<(events: LifecycleEvent[]) => void>();
  private nextEventId = 1;
  private closed = false;

  getCredential(key: CredentialKey): Promise<StoredCredential | undefined> {
    return this.run(() => copy(this.credentials.get(keyId(key))));
  }

  listCredentials(filter: CredentialFilter = {}): Promise<StoredCredential[]> {
    return this.run(() =>
      [...this.credentials.values()]
        .filter((c) =>
          (['server', 'issuer', 'subject'] as const).every(
            (f) => filter[f] === undefined || filter[f] === c.key[f],
          ),
        )
        .sort((a, b) => keyId(a.key).localeCompare(keyId(b.key)))
        .map((c) => copy(c)),
    );
  }

  writeCredential(
    record: CredentialRecord,
    condition: WriteCondition,
    event: EventInput,
  ): Promise<WriteResult> {
    return this.run(() => {
      const refused = this.check(record.key, condition);
      if (refused !== undefined) return refused;
      const generation = (this.credentials.get(keyId(record.key))?.generation ?? 0) + 1;
      const now = Date.now();
      const status = event.type === 'refreshed' ? { ...VALID, lastRefreshAt: now } : VALID;
      this.credentials.set(keyId(record.key), copy({ ...record, generation, status, updatedAt: now }));
      this.insertEvent({ ...event, generation });
      return { ok: true, generation } as const;
    });
  }

  async writeCredentials(writes: readonly CredentialWrite[]): Promise<WriteResult[]> {
    const results: WriteResult[] = [];
    for (const w of writes) results.push(await this.writeCredential(w.record, w.condition, w.event));
    return results;
  }

  updateStatus(key: CredentialKey, status: CredentialStatus, event?: EventInput): Promise<void> {
    return this.run(() => {
      const current = this.credentials.get(keyId(key));
      if (current === undefined) return;
      this.credentials.set(keyId(key), { ...current, status: copy(status), updatedAt: Date.now() });
      if (event !== undefined) this.insertEvent(event);
    });
  }

  deleteCredential(key: CredentialKey, condition: WriteCondition, event: EventInput): Promise<boolean> {
    return this.run(() => {
      if (this.check(key, condition) !== undefined) return false;
      const deleted = this.credentials.delete(keyId(key));
      this.leases.delete(keyId(key));
      if (deleted) this.insertEvent(event);
      return deleted;
    });
  }

  dpopKey(alg: string, create: () => DPoPKeyRecord): Promise<DPoPKeyRecord> {
    return this.run(() => {
      let key = this.dpopKeys.get(alg);
      if (key === undefined) this.dpopKeys.set(alg, (key = create()));
      return { ...key };
    });
  }

  getRegistration(issuer: string): Promise<Registration | undefined> {
    return this.run(() => copy(this.registrations.get(issuer)));
  }

  putRegistration(registration: Registration): Promise<void> {
    return this.run(() => void this.registrations.set(registration.issuer, copy(registration)));
  }

  deleteRegistration(issuer: string): Promise<void> {
    return this.run(() => void this.registrations.delete(issuer));
  }

  getDiscovery(kind: DiscoveryKind, id: string): Promise<DiscoveryRecord | undefined> {
    return this.run(() => copy(this.discovery.get(`${kind}\u0000${id}`)));
  }

  putDiscovery(record: DiscoveryRecord): Promise<void> {
    return this.run(() => void this.discovery.set(`${record.kind}\u0000${record.id}`, copy(record)));
  }

  deleteDiscovery(kind: DiscoveryKind, id: string): Promise<void> {
    return this.run(() => void this.discovery.delete(`${kind}\u0000${id}`));
  }

  acquireLease(key: CredentialKey, holder: LeaseHolder, ttlMs: number): Promise<Lease | undefined> {
    return this.run(() => {
      const now = Date.now();
      const current = this.leases.get(keyId(key));
      if (current !== undefined && current.owner !== holder.owner && current.expiresAt > now)
        return undefined;
      const acquiredAt = current?.owner === holder.owner ? current.acquiredAt : now;
      const lease: Lease = { key: { ...key }, ...holder, acquiredAt, expiresAt: now + ttlMs };
      this.leases.set(keyId(key), lease);
      return copy(lease);
    });
  }

  getLease(key: CredentialKey): Promise<Lease | undefined> {
    return this.run(() => {
      const lease = this.leases.get(keyId(key));
      return lease !== undefined && lease.expiresAt > Date.now() ? copy(lease) : undefined;
    });
  }

  listLeases(filter: CredentialFilter = {}): Promise<Lease[]> {
    return this.run(() =>
      [...this.leases.values()]
        .filter(
          (lease) =>
            lease.expiresAt > Date.now() &&
            (filter.server === undefined || lease.key.server === filter.server) &&
            (filter.issuer === undefined || lease.key.issuer === filter.issuer) &&
            (filter.subject === undefined || lease.key.subject === filter.subject),
        )
        .sort((a, b) => a.acquiredAt - b.acquiredAt)
        .map(copy),
    );
  }

  releaseLease(key: CredentialKey, owner: string): Promise<void> {
    return this.run(() => {
      if (this.leases.get(keyId(key))?.owner === owner) this.leases.delete(keyId(key));
    });
  }

  async releaseLeases(keys: readonly CredentialKey[], owner: string): Promise<void> {
    for (const key of keys) await this.releaseLease(key, owner);
  }

  breakLease(key: CredentialKey, staleOwner: string): Promise<boolean> {
    return this.run(
      () => this.leases.get(keyId(key))?.owner === staleOwner && this.leases.delete(keyId(key)),
    );
  }

  claimDueCredentials(claim: DueClaim): Promise<StoredCredential[]> {
    return this.run(() => {
      const clock = Date.now();
      const excluded = new Set(claim.excludeIssuers ?? []);
      const due = this.dueEntries(claim.now ?? clock)
        .filter(({ cred }) => !excluded.has(cred.key.issuer) && !this.leased(cred.key, clock))
        .slice(0, Math.max(0, claim.limit));
      const takeovers: Lease[] = [];
      for (const { cred } of due) {
        const prior = this.leases.get(keyId(cred.key));
        if (prior !== undefined && prior.owner !== claim.holder.owner) takeovers.push(prior);
        const lease: Lease = {
          key: { ...cred.key },
          ...claim.holder,
          acquiredAt: clock,
          expiresAt: clock + claim.ttlMs,
        };
        this.leases.set(keyId(cred.key), lease);
      }
      for (const prior of takeovers) claim.onTakeover?.({ ...prior.key }, prior.owner);
      return due.map(({ cred }) => copy(cred));
    });
  }

  countDue(now?: number): Promise<number> {
    return this.run(() => this.dueEntries(now ?? Date.now()).length);
  }

  nextDueAt(options: { excludeIssuers?: readonly string[] } = {}): Promise<number | undefined> {
    return this.run(() => {
      const clock = Date.now();
      const excluded = new Set(options.excludeIssuers ?? []);
      let next: number | undefined;
      for (const { cred, at } of this.dueEntries(Number.POSITIVE_INFINITY)) {
        if (excluded.has(cred.key.issuer)) continue;
        const lease = this.leases.get(keyId(cred.key));
        const free = lease === undefined || lease.expiresAt <= clock ? at : Math.max(at, lease.expiresAt);
        next = next === undefined ? free : Math.min(next, free);
      }
      return next;
    });
  }

  addPendingRevocations(
    entries: readonly NewPendingRevocation[],
    event: EventInput,
  ): Promise<PendingRevocation[]> {
    return this.run(() => {
      const added = entries.map((entry) => {
        const row: ClaimedRevocation = { ...copy(entry), id: randomUUID(), attempts: 0 };
        this.revocations.set(row.id, row);
        return publicRevocation(row);
      });
      this.insertEvent(event);
      return added;
    });
  }

  listPendingRevocations(filter: CredentialFilter = {}): Promise<PendingRevocation[]> {
    return this.run(() =>
      this.sortedRevocations()
        .filter((r) =>
          (['server', 'issuer', 'subject'] as const).every(
            (f) => filter[f] === undefined || filter[f] === r.key[f],
          ),
        )
        .map(publicRevocation),
    );
  }

  claimPendingRevocations(claim: RevocationClaim): Promise<ClaimedRevocation[]> {
    return this.run(() => {
      const now = claim.now ?? Date.now();
      const due = this.sortedRevocations()
        .filter(
          (r) =>
            r.nextAttemptAt <= now &&
            (r.claim === undefined || r.claim.owner === claim.owner || r.claim.expiresAt <= Date.now()),
        )
        .slice(0, claim.limit ?? 20);
      for (const row of due) row.claim = { owner: claim.owner, expiresAt: Date.now() + claim.ttlMs };
      return due.map(({ claim: _claim, ...row }) => copy(row));
    });
  }

  reschedulePendingRevocation(id: string, owner: string, next: RevocationSchedule): Promise<boolean> {
    return this.run(() => {
      const row = this.claimedBy(id, owner);
      if (row === undefined) return false;
      const { lastError: _old, claim: _claim, ...rest } = row;
      this.revocations.set(id, { ...rest, ...copy(next) });
      return true;
    });
  }

  removePendingRevocation(id: string, owner: string, event: EventInput): Promise<boolean> {
    return this.run(() => {
      if (this.claimedBy(id, owner) === undefined) return false;
      this.revocations.delete(id);
      this.insertEvent(event);
      return true;
    });
  }

  appendEvent(event: EventInput): Promise<LifecycleEvent> {
    return this.run(() => copy(this.insertEvent(event)));
  }

  readEvents(query: EventQuery = {}): Promise<LifecycleEvent[]> {
    return this.run(() =>
      this.events
        .filter(
          (e) => e.id > (query.afterId ?? 0) && (query.server === undefined || e.server === query.server),
        )
        .slice(0, query.limit ?? Infinity)
        .map((e) => copy(e)),
    );
  }

  lastEventId(): Promise<number> {
    return this.run(() => this.nextEventId - 1);
  }

  watch(listener: (events: LifecycleEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    return Promise.resolve();
  }

  private check(key: CredentialKey, condition: WriteCondition): Refusal | undefined {
    return refusal(
      this.credentials.get(keyId(key))?.generation,
      this.leases.get(keyId(key))?.owner,
      condition,
    );
  }

  /** Credentials due at or before `now`, earliest first (what SQL's due_at index gives). */
  private dueEntries(now: number): { cred: StoredCredential; at: number }[] {
    const entries: { cred: StoredCredential; at: number }[] = [];
    for (const cred of this.credentials.values()) {
      const at = dueAt(refreshPointAt(cred), cred.status);
      if (at !== undefined && at <= now) entries.push({ cred, at });
    }
    return entries.sort((a, b) => a.at - b.at);
  }

  private leased(key: CredentialKey, clock: number): boolean {
    const lease = this.leases.get(keyId(key));
    return lease !== undefined && lease.expiresAt > clock;
  }

  private sortedRevocations(): (ClaimedRevocation & { claim?: Claim })[] {
    return [...this.revocations.values()].sort(
      (a, b) => a.nextAttemptAt - b.nextAttemptAt || a.createdAt - b.createdAt,
    );
  }

  /** A live claim only: an expired one may already have been taken over. */
  private claimedBy(id: string, owner: string): (ClaimedRevocation & { claim?: Claim }) | undefined {
    const row = this.revocations.get(id);
    return row?.claim?.owner === owner && row.claim.expiresAt > Date.now() ? row : undefined;
  }

  private insertEvent(input: EventInput): LifecycleEvent {
    const event: LifecycleEvent = {
      ...copy(input),
      id: this.nextEventId++,
      at: input.at ?? Date.now(),
      pid: input.pid ?? process.pid,
    };
    this.events.push(event);
    // Delivered asynchronously, like every other store: listeners never run inside a write.
    for (const listener of this.listeners) {
      setImmediate(() => {
        if (this.listeners.has(listener)) listener([copy(event)]);
      });
    }
    return event;
  }

  private run<T>(body: () => T): Promise<T> {
    if (this.closed) {
      return Promise.reject(
        new LatchkeyError(ErrorCode.STORE_UNAVAILABLE, 'the credential store is closed.', {
          retryable: false,
        }),
      );
    }
    try {
      return Promise.resolve(body());
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }
}

interface Claim {
  owner: string;
  expiresAt: number;
}

function publicRevocation(row: ClaimedRevocation & { claim?: Claim }): PendingRevocation {
  const { secrets: _secrets, claim: _claim, ...rest } = row;
  return copy(rest);
}

function copy<T>(value: T): T {
  return value === undefined ? value : structuredClone(value);
}
