import { randomUUID } from 'node:crypto';

import type {
  ClaimedRevocation,
  CredentialFilter,
  NewPendingRevocation,
  PendingRevocation,
  PendingRevocationStore,
  RevocationClaim,
} from './contract.js';
import type { SecretBox } from './crypto.js';
import {
  DB_NOW_MS,
  decodeKey,
  pgFilter,
  pgText,
  type PgConnection,
  type Queryable,
} from './postgres-connection.js';
import { insertEvent } from './postgres-events.js';
import type { PgEventFeed } from './postgres-listen.js';
import {
  addedRevocation,
  openRevocationSecrets,
  type RevocationRow,
  revocationView,
  sealRevocationSecrets,
} from './revocation-rows.js';

/**
 * Pending revocations on Postgres. Claims are one `UPDATE` over rows picked with
 * `FOR UPDATE SKIP LOCKED`, timed by the database clock, so instances claiming at once
 * split the due rows between them instead of queueing on each other.
 */
export function pgPendingRevocations(conn: PgConnection, feed: PgEventFeed): PendingRevocationStore {
  return {
    addPendingRevocations: async (entries, event) => {
      const { added, eventId } = await conn.tx(async (client) => {
        const rows = await insertRevocations(client, conn.box, entries);
        return { added: rows, eventId: (await insertEvent(client, event)).id };
      });
      feed.saw(eventId);
      return added;
    },
    listPendingRevocations: (filter = {}) => conn.run(() => selectRevocations(conn, filter)),
    claimPendingRevocations: (claim) => conn.run(() => claimRevocations(conn, claim)),
    reschedulePendingRevocation: (id, owner, next) =>
      conn.run(async () => {
        const { rowCount } = await conn.pool.query(
          `UPDATE pending_revocations SET attempts = $3, next_attempt_at = $4, last_error = $5,
             claim_owner = NULL, claim_expires_at = NULL
           WHERE id = $1 AND claim_owner = $2 AND claim_expires_at > ${DB_NOW_MS}`,
          [id, owner, next.attempts, next.nextAttemptAt, next.lastError ?? null],
        );
        return (rowCount ?? 0) > 0;
      }),
    removePendingRevocation: async (id, owner, event) => {
      const eventId = await conn.tx(async (client) => {
        const { rowCount } = await client.query(
          `DELETE FROM pending_revocations WHERE id = $1 AND claim_owner = $2 AND claim_expires_at > ${DB_NOW_MS}`,
          [id, owner],
        );
        return (rowCount ?? 0) > 0 ? (await insertEvent(client, event)).id : undefined;
      });
      if (eventId !== undefined) feed.saw(eventId);
      return eventId !== undefined;
    },
  };
}

async function insertRevocations(
  client: Queryable,
  box: SecretBox,
  entries: readonly NewPendingRevocation[],
): Promise<PendingRevocation[]> {
  const added: PendingRevocation[] = [];
  for (const entry of entries) {
    const id = randomUUID();
    await client.query(
      `INSERT INTO pending_revocations (id, server, issuer, subject, token_type, client_id, auth_method,
         secrets, created_at, expires_at, attempts, next_attempt_at, last_error)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12)`,
      [
        id,
        pgText(entry.key.server),
        pgText(entry.key.issuer),
        pgText(entry.key.subject),
        entry.tokenType,
        entry.clientId,
        entry.tokenEndpointAuthMethod,
        sealRevocationSecrets(box, id, entry),
        entry.createdAt,
        entry.expiresAt,
        entry.nextAttemptAt,
        entry.lastError ?? null,
      ],
    );
    added.push(addedRevocation(id, entry));
  }
  return added;
}

async function selectRevocations(conn: PgConnection, filter: CredentialFilter): Promise<PendingRevocation[]> {
  const { rows } = await conn.pool.query<RevocationRow>(
    `SELECT * FROM pending_revocations
     WHERE ($1::text IS NULL OR server = $1) AND ($2::text IS NULL OR issuer = $2)
       AND ($3::text IS NULL OR subject = $3)
     ORDER BY next_attempt_at, created_at`,
    [pgFilter(filter.server), pgFilter(filter.issuer), pgFilter(filter.subject)],
  );
  return rows.map((row) => revocationView(decodeKey(row)));
}

async function claimRevocations(conn: PgConnection, claim: RevocationClaim): Promise<ClaimedRevocation[]> {
  const { rows } = await conn.pool.query<RevocationRow>(
    `WITH clock AS (SELECT ${DB_NOW_MS} AS now),
     due AS (
       SELECT id FROM pending_revocations, clock
       WHERE next_attempt_at <= COALESCE($2::bigint, clock.now)
         AND (claim_owner IS NULL OR claim_owner = $1 OR claim_expires_at <= clock.now)
       ORDER BY next_attempt_at, created_at LIMIT $4
       FOR UPDATE OF pending_revocations SKIP LOCKED
     )
     UPDATE pending_revocations p SET claim_owner = $1, claim_expires_at = clock.now + $3
     FROM due, clock WHERE p.id = due.id
     RETURNING p.*`,
    [claim.owner, claim.now ?? null, Math.max(0, Math.round(claim.ttlMs)), claim.limit ?? 20],
  );
  rows.sort((a, b) => a.next_attempt_at - b.next_attempt_at || a.created_at - b.created_at);
  return rows
    .map(decodeKey)
    .map((row) => ({ ...revocationView(row), secrets: openRevocationSecrets(conn.box, row) }));
}
