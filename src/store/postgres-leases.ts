import type { CredentialKey } from '../credential/key.js';
import type { CredentialFilter, Lease, LeaseHolder, LeaseTable } from './contract.js';
import {
  DB_NOW_MS,
  decodeKey,
  KEY_WHERE,
  keyValues,
  pgFilter,
  type PgConnection,
  type Queryable,
} from './postgres-connection.js';
import { releaseLeases } from './postgres-batch.js';
import { leaseFromRow as leaseOf, type LeaseRow } from './rows.js';

/** Key columns hold text as pgText wrote it. */
const leaseFromRow = (stored: LeaseRow): Lease => leaseOf(decodeKey(stored));

/**
 * Leases on Postgres: one row per key, taken in one conditional upsert on the database
 * clock. The `WHERE` of `ON CONFLICT … DO UPDATE` is evaluated against the row as locked,
 * so two instances racing for one expired lease cannot both get it.
 */
export function pgLeaseTable(conn: PgConnection): LeaseTable {
  return {
    acquireLease: (key, holder, ttlMs) => conn.run(() => acquire(conn.pool, key, holder, ttlMs)),
    getLease: (key) =>
      conn.run(async () => {
        const { rows } = await conn.pool.query<LeaseRow>(
          `SELECT * FROM leases WHERE ${KEY_WHERE} AND expires_at > ${DB_NOW_MS}`,
          keyValues(key),
        );
        return rows[0] === undefined ? undefined : leaseFromRow(rows[0]);
      }),
    listLeases: (filter = {}) => conn.run(() => liveLeases(conn, filter)),
    releaseLease: (key, owner) =>
      conn.run(async () => {
        await deleteLease(conn, key, owner);
      }),
    releaseLeases: (keys, owner) => conn.run(() => releaseLeases(conn.pool, keys, owner)),
    breakLease: (key, staleOwner) => conn.run(() => deleteLease(conn, key, staleOwner)),
  };
}

/** Take (or extend) the lease on `key`; undefined while another live holder has it. */
export async function acquire(
  db: Queryable,
  key: CredentialKey,
  holder: LeaseHolder,
  ttlMs: number,
): Promise<Lease | undefined> {
  const { rows } = await db.query<LeaseRow>(
    `WITH clock AS (SELECT ${DB_NOW_MS} AS now)
     INSERT INTO leases AS l (server, issuer, subject, owner, pid, host, acquired_at, expires_at)
     SELECT $1, $2, $3, $4, $5, $6, clock.now, clock.now + $7 FROM clock
     ON CONFLICT (server, issuer, subject) DO UPDATE SET owner = excluded.owner, pid = excluded.pid,
       host = excluded.host, expires_at = excluded.expires_at,
       acquired_at = CASE WHEN l.owner = excluded.owner THEN l.acquired_at ELSE excluded.acquired_at END
     WHERE l.owner = excluded.owner OR l.expires_at <= excluded.acquired_at
     RETURNING *`,
    [...keyValues(key), holder.owner, holder.pid, holder.host, Math.max(0, Math.round(ttlMs))],
  );
  return rows[0] === undefined ? undefined : leaseFromRow(rows[0]);
}

async function liveLeases(conn: PgConnection, filter: CredentialFilter): Promise<Lease[]> {
  const { rows } = await conn.pool.query<LeaseRow>(
    `SELECT * FROM leases WHERE expires_at > ${DB_NOW_MS}
       AND ($1::text IS NULL OR server = $1) AND ($2::text IS NULL OR issuer = $2)
       AND ($3::text IS NULL OR subject = $3)
     ORDER BY acquired_at, server, issuer, subject`,
    [pgFilter(filter.server), pgFilter(filter.issuer), pgFilter(filter.subject)],
  );
  return rows.map(leaseFromRow);
}

/** Delete the lease on `key` only while `owner` holds it. */
async function deleteLease(conn: PgConnection, key: CredentialKey, owner: string): Promise<boolean> {
  const { rowCount } = await conn.pool.query(`DELETE FROM leases WHERE ${KEY_WHERE} AND owner = $4`, [
    ...keyValues(key),
    owner,
  ]);
  return (rowCount ?? 0) > 0;
}
