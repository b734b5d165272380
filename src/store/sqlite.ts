import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import type { CredentialKey } from '../credential/key.js';
import type { CredentialRecord, CredentialStatus, StoredCredential } from '../credential/model.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import type {
  ClaimedRevocation,
  CredentialFilter,
  CredentialStore,
  DiscoveryKind,
  DiscoveryRecord,
  EventInput,
  EventQuery,
  Lease,
  LeaseHolder,
  LifecycleEvent,
  NewPendingRevocation,
  PendingRevocation,
  Registration,
  RevocationClaim,
  RevocationSchedule,
  StoreSecurity,
  WriteCondition,
  WriteResult,
} from './contract.js';
import { type Refusal, refusal } from './condition.js';
import { assertNotTruncated, corruptDatabase, isCorruptionError } from './corruption.js';
import { createSecretBox, type SecretBox } from './crypto.js';
import {
  type KeyRecord,
  type KeySource,
  type KeyStorage,
  resolveDataKey,
  type ResolvedKey,
} from './data-key.js';
import { defaultHome, ensurePrivateDir, makePrivate, PRIVATE_FILE_MODE } from './paths.js';
import {
  anyRevocationDue,
  claimRevocations,
  deleteClaimedRevocation,
  insertRevocations,
  rescheduleRevocation,
  selectRevocations,
} from './sqlite-revocations.js';
import { migrate } from './sqlite-schema.js';
import {
  type CredentialRow,
  type EventRow,
  eventFromRow,
  openCredential,
  openRegistration,
  type RegistrationRow,
  sealCredential,
  sealRegistration,
  VALID_STATUS,
} from './sqlite-rows.js';

export interface SqliteStoreOptions {
  /** State directory. Default: `LATCHKEY_HOME`, else the platform config directory. */
  home?: string;
  /** Database file. Default: `<home>/latchkey.db`. */
  path?: string;
  /** Where the data key lives. Default `auto` (keyring, else a warned-about key file). */
  keyStorage?: KeyStorage;
  /** Deadline for each OS keyring call. Default 3000 ms. */
  keyringTimeoutMs?: number;
  /** How long to wait for another process's write lock. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** Environment to read LATCHKEY_HOME / LATCHKEY_KEY from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Events beyond this many newest are pruned on open. Default 10000. */
  keepEvents?: number;
}

export const DEFAULT_WATCH_POLL_MS = 250;

/**
 * Open (creating if needed) the embedded store: one SQLite file in WAL mode, shared safely
 * by every latchkey process of the user. Secrets are sealed with a data key kept in the OS
 * keyring; see data-key.ts.
 */
export async function openSqliteStore(options: SqliteStoreOptions = {}): Promise<CredentialStore> {
  const env = options.env ?? process.env;
  const home = options.home ?? defaultHome(env);
  const path = options.path ?? join(home, 'latchkey.db');
  ensurePrivateDir(home);
  await assertNotTruncated(path, home);
  const db = openDatabase(path, options.busyTimeoutMs ?? 5000);
  try {
    migrate(db);
    const key = await setUpKey(db, {
      home,
      env,
      keyStorage: options.keyStorage ?? 'auto',
      ...(options.keyringTimeoutMs === undefined ? {} : { keyringTimeoutMs: options.keyringTimeoutMs }),
    });
    pruneEvents(db, options.keepEvents ?? 10_000);
    const security: StoreSecurity = {
      keySource: key.source,
      insecure: key.warning !== undefined,
      ...(key.warning === undefined ? {} : { warning: key.warning }),
      location: path,
    };
    return new SqliteStore(db, createSecretBox(key.key), security);
  } catch (error) {
    db.close();
    throw storeError(error, path);
  }
}

function openDatabase(path: string, busyTimeoutMs: number): Database.Database {
  // Create the file 0600 before SQLite does: SQLite gives its -wal and -shm files the mode of
  // the database file, so this one step keeps all three private regardless of umask.
  try {
    closeSync(openSync(path, 'a', PRIVATE_FILE_MODE));
    makePrivate(path);
    const db = new Database(path, { timeout: busyTimeoutMs });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL'); // durable in WAL mode across process crashes (kill -9)
    db.pragma('foreign_keys = ON');
    makePrivate(`${path}-wal`);
    makePrivate(`${path}-shm`);
    return db;
  } catch (error) {
    throw storeError(error, path);
  }
}

function storeError(error: unknown, path: string): unknown {
  if (isLatchkeyError(error)) return error;
  if (isCorruptionError(error)) return corruptDatabase(path, 'SQLite cannot read it as a database', error);
  return new LatchkeyError(ErrorCode.STORE_UNAVAILABLE, `cannot open the credential store ${path}.`, {
    retryable: false,
    nextStep:
      'check that the file is readable and writable by you, or set LATCHKEY_HOME to another directory',
    cause: error,
  });
}

async function setUpKey(
  db: Database.Database,
  options: { home: string; env: NodeJS.ProcessEnv; keyStorage: KeyStorage; keyringTimeoutMs?: number },
): Promise<ResolvedKey> {
  const hasSecrets = (): boolean =>
    db
      .prepare(
        `SELECT EXISTS (SELECT 1 FROM credentials) OR EXISTS (SELECT 1 FROM pending_revocations)
           OR EXISTS (SELECT 1 FROM registrations WHERE client_secret IS NOT NULL) AS yes`,
      )
      .pluck()
      .get() === 1;
  const recorded = readKeyRecord(db);
  if (recorded !== undefined) {
    const found = await resolveDataKey(options, recorded, hasSecrets);
    if (found.source === recorded.source && createSecretBox(found.key).fingerprint === recorded.fingerprint)
      return found;
  }
  // First use (or a key change on an empty store): decide under the write lock, so two
  // processes starting together cannot each create and record a different key.
  db.exec('BEGIN IMMEDIATE');
  try {
    const found = await resolveDataKey(options, readKeyRecord(db), hasSecrets);
    writeKeyRecord(db, { source: found.source, fingerprint: createSecretBox(found.key).fingerprint });
    db.exec('COMMIT');
    return found;
  } catch (error) {
    db.exec('ROLLBACK');
    throw error;
  }
}

function readKeyRecord(db: Database.Database): KeyRecord | undefined {
  const rows = db
    .prepare(`SELECT name, value FROM meta WHERE name IN ('key_source', 'key_fingerprint')`)
    .all() as {
    name: string;
    value: string;
  }[];
  const source = rows.find((r) => r.name === 'key_source')?.value as KeySource | undefined;
  const fingerprint = rows.find((r) => r.name === 'key_fingerprint')?.value;
  return source === undefined || fingerprint === undefined ? undefined : { source, fingerprint };
}

function writeKeyRecord(db: Database.Database, record: KeyRecord): void {
  const put = db.prepare(
    `INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
  );
  put.run('key_source', record.source);
  put.run('key_fingerprint', record.fingerprint);
}

/** The event log is a diagnosis aid, not an archive: keep the newest `keep`. */
function pruneEvents(db: Database.Database, keep: number): void {
  db.prepare(`DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?`).run(keep);
}

const KEY_WHERE = 'server = @server AND issuer = @issuer AND subject = @subject';

class SqliteStore implements CredentialStore {
  readonly kind = 'sqlite' as const;
  private closed = false;
  private readonly watchers = new Set<() => void>();

  constructor(
    private readonly db: Database.Database,
    private readonly box: SecretBox,
    readonly security: StoreSecurity,
  ) {}

  getCredential(key: CredentialKey): Promise<StoredCredential | undefined> {
    return this.run(() => {
      const row = this.db.prepare(`SELECT * FROM credentials WHERE ${KEY_WHERE}`).get(keyParams(key)) as
        CredentialRow | undefined;
      return row === undefined ? undefined : openCredential(this.box, row);
    });
  }

  listCredentials(filter: CredentialFilter = {}): Promise<StoredCredential[]> {
    return this.run(() => {
      const clauses = (['server', 'issuer', 'subject'] as const).filter((f) => filter[f] !== undefined);
      const where = clauses.length === 0 ? '' : `WHERE ${clauses.map((c) => `${c} = @${c}`).join(' AND ')}`;
      const rows = this.db
        .prepare(`SELECT * FROM credentials ${where} ORDER BY server, issuer, subject`)
        .all(filter) as CredentialRow[];
      return rows.map((row) => openCredential(this.box, row));
    });
  }

  writeCredential(
    record: CredentialRecord,
    condition: WriteCondition,
    event: EventInput,
  ): Promise<WriteResult> {
    return this.write(() => {
      const params = keyParams(record.key);
      const refused = this.checkCondition(record.key, condition);
      if (refused !== undefined) return refused;
      const current = this.generationOf(params);
      const generation = (current ?? 0) + 1;
      const now = Date.now();
      const status: CredentialStatus =
        event.type === 'refreshed' ? { ...VALID_STATUS, lastRefreshAt: now } : VALID_STATUS;
      this.db
        .prepare(
          `INSERT INTO credentials (server, issuer, subject, generation, secrets, record, status, updated_at)
           VALUES (@server, @issuer, @subject, @generation, @secrets, @record, @status, @now)
           ON CONFLICT (server, issuer, subject) DO UPDATE SET generation = excluded.generation,
             secrets = excluded.secrets, record = excluded.record, status = excluded.status, updated_at = excluded.updated_at`,
        )
        .run({
          ...params,
          ...sealCredential(this.box, record),
          generation,
          status: JSON.stringify(status),
          now,
        });
      this.insertEvent({ ...event, generation });
      return { ok: true, generation } as const;
    });
  }

  updateStatus(key: CredentialKey, status: CredentialStatus, event?: EventInput): Promise<void> {
    return this.write(() => {
      const changed = this.db
        .prepare(`UPDATE credentials SET status = @status, updated_at = @now WHERE ${KEY_WHERE}`)
        .run({ ...keyParams(key), status: JSON.stringify(status), now: Date.now() }).changes;
      if (changed > 0 && event !== undefined) this.insertEvent(event);
    });
  }

  deleteCredential(key: CredentialKey, condition: WriteCondition, event: EventInput): Promise<boolean> {
    return this.write(() => {
      if (this.checkCondition(key, condition) !== undefined) return false;
      const params = keyParams(key);
      const deleted = this.db.prepare(`DELETE FROM credentials WHERE ${KEY_WHERE}`).run(params).changes > 0;
      this.db.prepare(`DELETE FROM leases WHERE ${KEY_WHERE}`).run(params);
      if (deleted) this.insertEvent(event);
      return deleted;
    });
  }

  getRegistration(issuer: string): Promise<Registration | undefined> {
    return this.run(() => {
      const row = this.db.prepare(`SELECT * FROM registrations WHERE issuer = ?`).get(issuer) as
        RegistrationRow | undefined;
      return row === undefined ? undefined : openRegistration(this.box, row);
    });
  }

  putRegistration(registration: Registration): Promise<void> {
    return this.write(() => {
      this.db
        .prepare(
          `INSERT INTO registrations (issuer, record, client_secret) VALUES (@issuer, @record, @client_secret)
           ON CONFLICT (issuer) DO UPDATE SET record = excluded.record, client_secret = excluded.client_secret`,
        )
        .run({ issuer: registration.issuer, ...sealRegistration(this.box, registration) });
    });
  }

  deleteRegistration(issuer: string): Promise<void> {
    return this.write(() => {
      this.db.prepare(`DELETE FROM registrations WHERE issuer = ?`).run(issuer);
    });
  }

  getDiscovery(kind: DiscoveryKind, id: string): Promise<DiscoveryRecord | undefined> {
    return this.run(() => {
      const row = this.db.prepare(`SELECT * FROM discovery WHERE kind = ? AND id = ?`).get(kind, id) as
        | { kind: DiscoveryKind; id: string; document: string; source_url: string; fetched_at: number }
        | undefined;
      if (row === undefined) return undefined;
      return {
        kind: row.kind,
        id: row.id,
        document: JSON.parse(row.document) as Record<string, unknown>,
        sourceUrl: row.source_url,
        fetchedAt: row.fetched_at,
      };
    });
  }

  putDiscovery(record: DiscoveryRecord): Promise<void> {
    return this.write(() => {
      this.db
        .prepare(
          `INSERT INTO discovery (kind, id, document, source_url, fetched_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (kind, id) DO UPDATE SET document = excluded.document, source_url = excluded.source_url,
             fetched_at = excluded.fetched_at`,
        )
        .run(record.kind, record.id, JSON.stringify(record.document), record.sourceUrl, record.fetchedAt);
    });
  }

  deleteDiscovery(kind: DiscoveryKind, id: string): Promise<void> {
    return this.write(() => {
      this.db.prepare(`DELETE FROM discovery WHERE kind = ? AND id = ?`).run(kind, id);
    });
  }

  acquireLease(key: CredentialKey, holder: LeaseHolder, ttlMs: number): Promise<Lease | undefined> {
    return this.write(() => {
      const now = Date.now();
      const current = this.leaseOf(key);
      if (current !== undefined && current.owner !== holder.owner && current.expiresAt > now)
        return undefined;
      const lease: Lease = {
        key: keyParams(key),
        ...holder,
        acquiredAt: current?.owner === holder.owner ? current.acquiredAt : now,
        expiresAt: now + ttlMs,
      };
      this.db
        .prepare(
          `INSERT INTO leases (server, issuer, subject, owner, pid, host, acquired_at, expires_at)
           VALUES (@server, @issuer, @subject, @owner, @pid, @host, @acquiredAt, @expiresAt)
           ON CONFLICT (server, issuer, subject) DO UPDATE SET owner = excluded.owner, pid = excluded.pid,
             host = excluded.host, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`,
        )
        .run({
          ...keyParams(key),
          owner: holder.owner,
          pid: holder.pid,
          host: holder.host,
          acquiredAt: lease.acquiredAt,
          expiresAt: lease.expiresAt,
        });
      return lease;
    });
  }

  getLease(key: CredentialKey): Promise<Lease | undefined> {
    return this.run(() => {
      const lease = this.leaseOf(key);
      return lease !== undefined && lease.expiresAt > Date.now() ? lease : undefined;
    });
  }

  listLeases(filter: CredentialFilter = {}): Promise<Lease[]> {
    return this.run(() => {
      const rows = this.db
        .prepare(
          `SELECT * FROM leases WHERE expires_at > @now
             AND (@server IS NULL OR server = @server) AND (@issuer IS NULL OR issuer = @issuer)
             AND (@subject IS NULL OR subject = @subject)
           ORDER BY acquired_at, server, issuer, subject`,
        )
        .all({
          now: Date.now(),
          server: filter.server ?? null,
          issuer: filter.issuer ?? null,
          subject: filter.subject ?? null,
        }) as LeaseRow[];
      return rows.map((row) => ({
        key: { server: row.server, issuer: row.issuer, subject: row.subject },
        owner: row.owner,
        pid: row.pid,
        host: row.host,
        acquiredAt: row.acquired_at,
        expiresAt: row.expires_at,
      }));
    });
  }

  releaseLease(key: CredentialKey, owner: string): Promise<void> {
    return this.write(() => {
      this.db
        .prepare(`DELETE FROM leases WHERE ${KEY_WHERE} AND owner = @owner`)
        .run({ ...keyParams(key), owner });
    });
  }

  breakLease(key: CredentialKey, staleOwner: string): Promise<boolean> {
    return this.write(
      () =>
        this.db
          .prepare(`DELETE FROM leases WHERE ${KEY_WHERE} AND owner = @owner`)
          .run({ ...keyParams(key), owner: staleOwner }).changes > 0,
    );
  }

  addPendingRevocations(
    entries: readonly NewPendingRevocation[],
    event: EventInput,
  ): Promise<PendingRevocation[]> {
    return this.write(() => {
      const added = insertRevocations(this.db, this.box, entries);
      this.insertEvent(event);
      return added;
    });
  }

  listPendingRevocations(filter: CredentialFilter = {}): Promise<PendingRevocation[]> {
    return this.run(() => selectRevocations(this.db, filter));
  }

  claimPendingRevocations(claim: RevocationClaim): Promise<ClaimedRevocation[]> {
    // Every manager start claims; with nothing due, a plain read spares the write lock.
    return this.run(() => anyRevocationDue(this.db, claim.now ?? Date.now())).then((due) =>
      due ? this.write(() => claimRevocations(this.db, this.box, claim)) : [],
    );
  }

  reschedulePendingRevocation(id: string, owner: string, next: RevocationSchedule): Promise<boolean> {
    return this.write(() => rescheduleRevocation(this.db, id, owner, next));
  }

  removePendingRevocation(id: string, owner: string, event: EventInput): Promise<boolean> {
    return this.write(() => {
      const removed = deleteClaimedRevocation(this.db, id, owner);
      if (removed) this.insertEvent(event);
      return removed;
    });
  }

  appendEvent(event: EventInput): Promise<LifecycleEvent> {
    return this.write(() => this.insertEvent(event));
  }

  readEvents(query: EventQuery = {}): Promise<LifecycleEvent[]> {
    return this.run(() => this.eventsAfter(query.afterId ?? 0, query.server, query.limit));
  }

  lastEventId(): Promise<number> {
    return this.run(() => this.maxEventId());
  }

  watch(listener: (events: LifecycleEvent[]) => void, options: { pollMs?: number } = {}): () => void {
    this.assertOpen();
    let cursor = this.maxEventId();
    let version = this.dataVersion();
    let dirty = false;
    // A poll already scheduled (a nudge's setImmediate) must not call the listener once
    // the caller has unsubscribed.
    let subscribed = true;
    const deliver = (): void => {
      if (this.closed || !subscribed) return;
      const now = this.dataVersion();
      if (now === version && !dirty) return;
      version = now;
      dirty = false;
      const events = this.eventsAfter(cursor);
      const last = events.at(-1);
      if (last === undefined) return;
      cursor = last.id;
      listener(events);
    };
    const poll = (): void => {
      try {
        deliver();
      } catch {
        // A locked or briefly unreadable database: the next tick tries again.
      }
    };
    const timer = setInterval(poll, options.pollMs ?? DEFAULT_WATCH_POLL_MS);
    timer.unref();
    // Our own writes do not change data_version for this connection; they nudge instead.
    const nudge = (): void => {
      dirty = true;
      setImmediate(poll);
    };
    this.watchers.add(nudge);
    return () => {
      subscribed = false;
      clearInterval(timer);
      this.watchers.delete(nudge);
    };
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.watchers.clear();
      this.db.close();
    }
    return Promise.resolve();
  }

  private checkCondition(key: CredentialKey, condition: WriteCondition): Refusal | undefined {
    return refusal(this.generationOf(keyParams(key)), this.leaseOf(key)?.owner, condition);
  }

  private generationOf(params: ReturnType<typeof keyParams>): number | undefined {
    return this.db.prepare(`SELECT generation FROM credentials WHERE ${KEY_WHERE}`).pluck().get(params) as
      number | undefined;
  }

  private leaseOf(key: CredentialKey): Lease | undefined {
    const row = this.db.prepare(`SELECT * FROM leases WHERE ${KEY_WHERE}`).get(keyParams(key)) as
      { owner: string; pid: number; host: string; acquired_at: number; expires_at: number } | undefined;
    if (row === undefined) return undefined;
    return {
      key: keyParams(key),
      owner: row.owner,
      pid: row.pid,
      host: row.host,
      acquiredAt: row.acquired_at,
      expiresAt: row.expires_at,
    };
  }

  private insertEvent(event: EventInput): LifecycleEvent {
    const row = this.db
      .prepare(
        `INSERT INTO events (at, type, server, issuer, subject, generation, pid, detail)
         VALUES (@at, @type, @server, @issuer, @subject, @generation, @pid, @detail) RETURNING *`,
      )
      .get({
        at: event.at ?? Date.now(),
        type: event.type,
        server: event.server,
        issuer: event.issuer,
        subject: event.subject,
        generation: event.generation ?? null,
        pid: event.pid ?? process.pid,
        detail: event.detail === undefined ? null : JSON.stringify(event.detail),
      }) as EventRow;
    for (const nudge of this.watchers) nudge();
    return eventFromRow(row);
  }

  private eventsAfter(afterId: number, server?: string, limit?: number): LifecycleEvent[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM events WHERE id > @afterId ${server === undefined ? '' : 'AND server = @server'}
         ORDER BY id LIMIT @limit`,
      )
      .all({ afterId, limit: limit ?? -1, ...(server === undefined ? {} : { server }) }) as EventRow[];
    return rows.map(eventFromRow);
  }

  private maxEventId(): number {
    return (this.db.prepare(`SELECT COALESCE(MAX(id), 0) FROM events`).pluck().get() as number) ?? 0;
  }

  private dataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  private run<T>(body: () => T): Promise<T> {
    try {
      this.assertOpen();
      return Promise.resolve(body());
    } catch (error) {
      return Promise.reject(this.wrap(error));
    }
  }

  /** Writes run in an IMMEDIATE transaction: the lock is taken before the first read. */
  private write<T>(body: () => T): Promise<T> {
    return this.run(() => this.db.transaction(body).immediate());
  }

  private assertOpen(): void {
    if (this.closed)
      throw new LatchkeyError(ErrorCode.STORE_UNAVAILABLE, 'the credential store is closed.', {
        retryable: false,
      });
  }

  private wrap(error: unknown): unknown {
    if (isLatchkeyError(error)) return error;
    const busy = (error as { code?: string }).code?.startsWith('SQLITE_BUSY') === true;
    return new LatchkeyError(
      ErrorCode.STORE_UNAVAILABLE,
      busy ? 'the credential store stayed locked by another process.' : 'the credential store failed.',
      { retryable: busy, nextStep: busy ? 'retry' : `check ${this.security.location}`, cause: error },
    );
  }
}

function keyParams(key: CredentialKey): { server: string; issuer: string; subject: string } {
  return { server: key.server, issuer: key.issuer, subject: key.subject };
}

interface LeaseRow {
  server: string;
  issuer: string;
  subject: string;
  owner: string;
  pid: number;
  host: string;
  acquired_at: number;
  expires_at: number;
}
