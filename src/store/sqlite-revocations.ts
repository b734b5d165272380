import { randomUUID } from 'node:crypto';

import type BetterSqlite3 from 'better-sqlite3';

import type {
  ClaimedRevocation,
  CredentialFilter,
  NewPendingRevocation,
  PendingRevocation,
  PendingRevocationStore,
  RevocationClaim,
  RevocationSchedule,
} from './contract.js';
import type { SecretBox } from './crypto.js';
import {
  addedRevocation,
  openRevocationSecrets,
  type RevocationRow,
  revocationView,
  sealRevocationSecrets,
} from './revocation-rows.js';
import type { SqliteConnection } from './sqlite-connection.js';
import { insertEvent } from './sqlite-events.js';

/** The pending-revocations table of the SQLite store; secrets are sealed and opened here only. */
export function sqlitePendingRevocations(conn: SqliteConnection): PendingRevocationStore {
  return {
    addPendingRevocations: (entries, event) =>
      conn.write(() => {
        const added = insertRevocations(conn.db, conn.box, entries);
        insertEvent(conn, event);
        return added;
      }),
    listPendingRevocations: (filter = {}) => conn.run(() => selectRevocations(conn.db, filter)),
    claimPendingRevocations: (claim) =>
      // Every manager start claims; with nothing due, a plain read spares the write lock.
      conn
        .run(() => anyRevocationDue(conn.db, claim.now ?? Date.now()))
        .then((due) => (due ? conn.write(() => claimRevocations(conn.db, conn.box, claim)) : [])),
    reschedulePendingRevocation: (id, owner, next) =>
      conn.write(() => rescheduleRevocation(conn.db, id, owner, next)),
    removePendingRevocation: (id, owner, event) =>
      conn.write(() => {
        const removed = deleteClaimedRevocation(conn.db, id, owner);
        if (removed) insertEvent(conn, event);
        return removed;
      }),
  };
}

/* The functions below run inside the store's transactions (the caller wraps them). */

function insertRevocations(
  db: BetterSqlite3.Database,
  box: SecretBox,
  entries: readonly NewPendingRevocation[],
): PendingRevocation[] {
  const insert = db.prepare(
    `INSERT INTO pending_revocations (id, server, issuer, subject, token_type, client_id, auth_method,
       secrets, created_at, expires_at, attempts, next_attempt_at, last_error)
     VALUES (@id, @server, @issuer, @subject, @token_type, @client_id, @auth_method, @secrets,
       @created_at, @expires_at, 0, @next_attempt_at, @last_error)`,
  );
  return entries.map((entry) => {
    const id = randomUUID();
    insert.run({
      id,
      ...entry.key,
      token_type: entry.tokenType,
      client_id: entry.clientId,
      auth_method: entry.tokenEndpointAuthMethod,
      secrets: sealRevocationSecrets(box, id, entry),
      created_at: entry.createdAt,
      expires_at: entry.expiresAt,
      next_attempt_at: entry.nextAttemptAt,
      last_error: entry.lastError ?? null,
    });
    return addedRevocation(id, entry);
  });
}

function selectRevocations(db: BetterSqlite3.Database, filter: CredentialFilter): PendingRevocation[] {
  const rows = db
    .prepare(
      `SELECT * FROM pending_revocations
       WHERE (@server IS NULL OR server = @server) AND (@issuer IS NULL OR issuer = @issuer)
         AND (@subject IS NULL OR subject = @subject)
       ORDER BY next_attempt_at, created_at`,
    )
    .all({
      server: filter.server ?? null,
      issuer: filter.issuer ?? null,
      subject: filter.subject ?? null,
    }) as RevocationRow[];
  return rows.map(revocationView);
}

function anyRevocationDue(db: BetterSqlite3.Database, now: number): boolean {
  return (
    db
      .prepare(`SELECT EXISTS (SELECT 1 FROM pending_revocations WHERE next_attempt_at <= ?)`)
      .pluck()
      .get(now) === 1
  );
}

function claimRevocations(
  db: BetterSqlite3.Database,
  box: SecretBox,
  claim: RevocationClaim,
): ClaimedRevocation[] {
  const clock = Date.now();
  const rows = db
    .prepare(
      `SELECT * FROM pending_revocations
       WHERE next_attempt_at <= @now
         AND (claim_owner IS NULL OR claim_owner = @owner OR claim_expires_at <= @clock)
       ORDER BY next_attempt_at, created_at LIMIT @limit`,
    )
    .all({ now: claim.now ?? clock, owner: claim.owner, clock, limit: claim.limit ?? 20 }) as RevocationRow[];
  const take = db.prepare(
    `UPDATE pending_revocations SET claim_owner = @owner, claim_expires_at = @until WHERE id = @id`,
  );
  return rows.map((row) => {
    take.run({ id: row.id, owner: claim.owner, until: clock + claim.ttlMs });
    return { ...revocationView(row), secrets: openRevocationSecrets(box, row) };
  });
}

function rescheduleRevocation(
  db: BetterSqlite3.Database,
  id: string,
  owner: string,
  next: RevocationSchedule,
): boolean {
  return (
    db
      .prepare(
        `UPDATE pending_revocations SET attempts = @attempts, next_attempt_at = @next, last_error = @error,
           claim_owner = NULL, claim_expires_at = NULL
         WHERE id = @id AND claim_owner = @owner AND claim_expires_at > @clock`,
      )
      .run({
        id,
        owner,
        clock: Date.now(),
        attempts: next.attempts,
        next: next.nextAttemptAt,
        error: next.lastError ?? null,
      }).changes > 0
  );
}

function deleteClaimedRevocation(db: BetterSqlite3.Database, id: string, owner: string): boolean {
  return (
    db
      .prepare(`DELETE FROM pending_revocations WHERE id = ? AND claim_owner = ? AND claim_expires_at > ?`)
      .run(id, owner, Date.now()).changes > 0
  );
}
