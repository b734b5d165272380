import type { CredentialKey } from '../credential/key.js';
import type { CredentialFilter, Lease, LeaseHolder, LeaseTable } from './contract.js';
import { leaseFromRow, type LeaseRow } from './rows.js';
import { KEY_WHERE, keyParams, type SqliteConnection } from './sqlite-connection.js';

/** Leases on SQLite: one row per key, taken over in place once expired. */
export function sqliteLeaseTable(conn: SqliteConnection): LeaseTable {
  return {
    acquireLease: (key, holder, ttlMs) => conn.write(() => acquire(conn, key, holder, ttlMs)),
    getLease: (key) =>
      conn.run(() => {
        const lease = leaseOf(conn, key);
        return lease !== undefined && lease.expiresAt > Date.now() ? lease : undefined;
      }),
    listLeases: (filter = {}) => conn.run(() => liveLeases(conn, filter)),
    releaseLease: (key, owner) =>
      conn.write(() => {
        deleteLease(conn, key, owner);
      }),
    releaseLeases: (keys, owner) =>
      conn.write(() => {
        for (const key of keys) deleteLease(conn, key, owner);
      }),
    breakLease: (key, staleOwner) => conn.write(() => deleteLease(conn, key, staleOwner)),
  };
}

/** The lease row on `key`, expired or not: a conditional write checks it inside its transaction. */
export function leaseOf(conn: SqliteConnection, key: CredentialKey): Lease | undefined {
  const row = conn.db.prepare(`SELECT * FROM leases WHERE ${KEY_WHERE}`).get(keyParams(key)) as
    LeaseRow | undefined;
  return row === undefined ? undefined : leaseFromRow(row);
}

/** Take (or extend) the lease inside the caller's transaction; undefined if another live holder has it. */
export function acquire(
  conn: SqliteConnection,
  key: CredentialKey,
  holder: LeaseHolder,
  ttlMs: number,
): Lease | undefined {
  const now = Date.now();
  const current = leaseOf(conn, key);
  if (current !== undefined && current.owner !== holder.owner && current.expiresAt > now) return undefined;
  const lease: Lease = {
    key: keyParams(key),
    ...holder,
    acquiredAt: current?.owner === holder.owner ? current.acquiredAt : now,
    expiresAt: now + ttlMs,
  };
  conn.db
    .prepare(
      `INSERT INTO leases (server, issuer, subject, owner, pid, host, acquired_at, expires_at)
       VALUES (@server, @issuer, @subject, @owner, @pid, @host, @acquiredAt, @expiresAt)
       ON CONFLICT (server, issuer, subject) DO UPDATE SET owner = excluded.owner, pid = excluded.pid,
         host = excluded.host, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`,
    )
    .run({
      ...lease.key,
      owner: lease.owner,
      pid: lease.pid,
      host: lease.host,
      acquiredAt: lease.acquiredAt,
      expiresAt: lease.expiresAt,
    });
  return lease;
}

function liveLeases(conn: SqliteConnection, filter: CredentialFilter): Lease[] {
  const rows = conn.db
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
  return rows.map(leaseFromRow);
}

/** Delete the lease on `key` only while `owner` holds it. */
function deleteLease(conn: SqliteConnection, key: CredentialKey, owner: string): boolean {
  return (
    conn.db
      .prepare(`DELETE FROM leases WHERE ${KEY_WHERE} AND owner = @owner`)
      .run({ ...keyParams(key), owner }).changes > 0
  );
}

/** Remove whatever lease `key` has: a deleted credential takes its lease with it. */
export function dropLease(conn: SqliteConnection, key: CredentialKey): void {
  conn.db.prepare(`DELETE FROM leases WHERE ${KEY_WHERE}`).run(keyParams(key));
}
