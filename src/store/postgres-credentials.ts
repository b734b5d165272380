import { notBefore } from '../credential/due.js';
import type { CredentialKey } from '../credential/key.js';
import type { CredentialRecord, StoredCredential } from '../credential/model.js';
import { type Refusal, refusal } from './condition.js';
import type {
  CredentialFilter,
  CredentialTable,
  EventInput,
  WriteCondition,
  WriteResult,
} from './contract.js';
import {
  decodeKey,
  KEY_WHERE,
  keyValues,
  pgFilter,
  type PgConnection,
  type Queryable,
} from './postgres-connection.js';
import { writeBatch, writtenValues } from './postgres-batch.js';
import { insertEvent } from './postgres-events.js';
import type { PgEventFeed } from './postgres-listen.js';
import { type CredentialRow, openCredential } from './rows.js';

/**
 * Credentials on Postgres: tokens sealed with the data key exactly as in SQLite, each write
 * compare-and-set in one transaction with its event. The generation check is the write
 * statement itself (an insert that must not conflict, or an update that must match the
 * expected generation), so two instances racing on one credential cannot both win; the lease
 * row, when the write names an owner, is locked for the transaction's length so it cannot
 * change hands between the check and the commit.
 */
export function pgCredentialTable(conn: PgConnection, feed: PgEventFeed): CredentialTable {
  return {
    getCredential: (key) =>
      conn.run(async () => {
        const { rows } = await conn.pool.query<CredentialRow>(
          `SELECT * FROM credentials WHERE ${KEY_WHERE}`,
          keyValues(key),
        );
        return rows[0] === undefined ? undefined : openCredential(conn.box, decodeKey(rows[0]));
      }),
    listCredentials: (filter = {}) => conn.run(() => list(conn, filter)),
    writeCredential: async (record, condition, event) => {
      const outcome = await conn.tx((client) => write(conn, client, record, condition, event));
      if (outcome.eventId !== undefined) feed.saw(outcome.eventId);
      return outcome.result;
    },
    writeCredentials: async (writes) => {
      if (writes.length === 0) return [];
      const outcome = await conn.tx((client) =>
        writeBatch(conn, client, writes, (w) => write(conn, client, w.record, w.condition, w.event)),
      );
      if (outcome.eventId !== undefined) feed.saw(outcome.eventId);
      return outcome.results;
    },
    updateStatus: async (key, status, event) => {
      const eventId = await conn.tx(async (client) => {
        const { rowCount } = await client.query(
          `UPDATE credentials SET status = $4, updated_at = $5,
             due_at = CASE WHEN $6 OR refresh_at IS NULL THEN NULL ELSE GREATEST(refresh_at, $7) END
           WHERE ${KEY_WHERE}`,
          [
            ...keyValues(key),
            JSON.stringify(status),
            Date.now(),
            status.state === 'needs-login',
            notBefore(status),
          ],
        );
        if ((rowCount ?? 0) === 0 || event === undefined) return undefined;
        return (await insertEvent(client, event)).id;
      });
      if (eventId !== undefined) feed.saw(eventId);
    },
    deleteCredential: async (key, condition, event) => {
      const eventId = await conn.tx((client) => remove(client, key, condition, event));
      if (eventId !== undefined) feed.saw(eventId);
      return eventId !== undefined;
    },
  };
}

async function list(conn: PgConnection, filter: CredentialFilter): Promise<StoredCredential[]> {
  const { rows } = await conn.pool.query<CredentialRow>(
    `SELECT * FROM credentials
     WHERE ($1::text IS NULL OR server = $1) AND ($2::text IS NULL OR issuer = $2)
       AND ($3::text IS NULL OR subject = $3)
     ORDER BY server, issuer, subject`,
    [pgFilter(filter.server), pgFilter(filter.issuer), pgFilter(filter.subject)],
  );
  return rows.map((row) => openCredential(conn.box, decodeKey(row)));
}

async function write(
  conn: PgConnection,
  client: Queryable,
  record: CredentialRecord,
  condition: WriteCondition,
  event: EventInput,
): Promise<{ result: WriteResult; eventId?: number }> {
  const key = record.key;
  if (condition.leaseOwner !== undefined) {
    // The credential row first, then its lease row: the order a claim locks them in
    // (postgres-due.ts). The other order deadlocks with a claim whose snapshot predates
    // this lease, and the victim may be this write, after the AS rotated the tokens.
    const current = await lockedGeneration(client, key);
    const owner = await lockedLeaseOwner(client, key);
    if (owner !== condition.leaseOwner) return { result: refuse(current, owner, condition) };
  }
  const now = Date.now();
  const values = writtenValues(conn, record, event, now);
  const generation = await conditionalWrite(client, condition.expectedGeneration, values);
  if (generation === undefined) {
    return { result: refuse(await generationOf(client, key), condition.leaseOwner, condition) };
  }
  const appended = await insertEvent(client, { ...event, generation });
  return { result: { ok: true, generation }, eventId: appended.id };
}

const COLUMNS =
  '(server, issuer, subject, generation, secrets, record, status, updated_at, refresh_at, due_at)';
const SET_ALL = `secrets = excluded.secrets, record = excluded.record, status = excluded.status,
  updated_at = excluded.updated_at, refresh_at = excluded.refresh_at, due_at = excluded.due_at`;

/** One statement that writes only if the generation matches; the new generation, or undefined. */
async function conditionalWrite(
  client: Queryable,
  expected: WriteCondition['expectedGeneration'],
  values: unknown[],
): Promise<number | undefined> {
  const sql =
    expected === 'any'
      ? `INSERT INTO credentials AS c ${COLUMNS} VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (server, issuer, subject) DO UPDATE SET generation = c.generation + 1, ${SET_ALL}
         RETURNING generation`
      : expected === 0
        ? `INSERT INTO credentials ${COLUMNS} VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (server, issuer, subject) DO NOTHING RETURNING generation`
        : `UPDATE credentials SET generation = generation + 1, secrets = $4, record = $5, status = $6,
             updated_at = $7, refresh_at = $8, due_at = $9
           WHERE ${KEY_WHERE} AND generation = $10 RETURNING generation`;
  const params = expected === 'any' || expected === 0 ? values : [...values, expected];
  const { rows } = await client.query<{ generation: number }>(sql, params);
  return rows[0]?.generation;
}

/** Returns the deleted event's id, or undefined when nothing was deleted. */
async function remove(
  client: Queryable,
  key: CredentialKey,
  condition: WriteCondition,
  event: EventInput,
): Promise<number | undefined> {
  // Credential row, then lease row: the one lock order (see write()).
  const current = await lockedGeneration(client, key);
  const owner = condition.leaseOwner === undefined ? undefined : await lockedLeaseOwner(client, key);
  if (refusal(current, condition.leaseOwner === undefined ? undefined : owner, condition) !== undefined)
    return undefined;
  const { rowCount } = await client.query(`DELETE FROM credentials WHERE ${KEY_WHERE}`, keyValues(key));
  await client.query(`DELETE FROM leases WHERE ${KEY_WHERE}`, keyValues(key));
  if ((rowCount ?? 0) === 0) return undefined;
  return (await insertEvent(client, event)).id;
}

/** The credential's generation, its row locked until the transaction ends. */
async function lockedGeneration(client: Queryable, key: CredentialKey): Promise<number | undefined> {
  const { rows } = await client.query<{ generation: number }>(
    `SELECT generation FROM credentials WHERE ${KEY_WHERE} FOR UPDATE`,
    keyValues(key),
  );
  return rows[0]?.generation;
}

/** The lease owner on `key` (expired or not), locked until the transaction ends. */
async function lockedLeaseOwner(client: Queryable, key: CredentialKey): Promise<string | undefined> {
  const { rows } = await client.query<{ owner: string }>(
    `SELECT owner FROM leases WHERE ${KEY_WHERE} FOR SHARE`,
    keyValues(key),
  );
  return rows[0]?.owner;
}

async function generationOf(client: Queryable, key: CredentialKey): Promise<number | undefined> {
  const { rows } = await client.query<{ generation: number }>(
    `SELECT generation FROM credentials WHERE ${KEY_WHERE}`,
    keyValues(key),
  );
  return rows[0]?.generation;
}

function refuse(current: number | undefined, owner: string | undefined, condition: WriteCondition): Refusal {
  return (
    refusal(current, owner, condition) ?? {
      ok: false,
      reason: 'generation-mismatch',
      ...(current === undefined ? {} : { currentGeneration: current }),
    }
  );
}
