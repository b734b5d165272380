import { dueAt, refreshPointAt } from '../credential/due.js';
import type { CredentialKey } from '../credential/key.js';
import type { CredentialRecord, CredentialStatus } from '../credential/model.js';
import { refusal } from './condition.js';
import type { CredentialWrite, EventInput, WriteResult } from './contract.js';
import { keyValues, pgText, type PgConnection, type Queryable } from './postgres-connection.js';
import { EVENTS_CHANNEL } from './postgres-events.js';
import { EVENT_ORDER_LOCK } from './postgres-schema.js';
import { sealCredential, VALID_STATUS } from './rows.js';

/**
 * Many generation-checked token writes in one transaction of a fixed number of statements,
 * whatever the batch size (the fleet refresher's writes; docs/refresher.md): lock the
 * credential rows, then their lease rows (the one lock order, see postgres-credentials.ts),
 * judge each write's condition, update the accepted rows in one `UPDATE … FROM unnest(…)`
 * that still checks each generation, and append their events in one insert under the
 * event-order lock, with one NOTIFY of the newest id. Writes without a numeric expected
 * generation (logins), and a key's second write in the batch, are not batched: they go
 * through `single` after it, in the same transaction, in their order.
 */
export async function writeBatch(
  conn: PgConnection,
  client: Queryable,
  writes: readonly CredentialWrite[],
  single: (w: CredentialWrite) => Promise<{ result: WriteResult; eventId?: number }>,
): Promise<{ results: WriteResult[]; eventId?: number }> {
  const keys = writes.map((w) => w.record.key);
  const generations = await lockedColumn(client, 'credentials', 'generation', 'FOR UPDATE', keys);
  const owners = writes.some((w) => w.condition.leaseOwner !== undefined)
    ? await lockedColumn(client, 'leases', 'owner', 'FOR SHARE', keys)
    : new Map<string, string>();
  const results: (WriteResult | undefined)[] = [];
  const accepted: number[] = [];
  // A key's second write in one batch is judged after its first has been applied, alone.
  const later: number[] = [];
  const seen = new Set<string>();
  for (const [i, w] of writes.entries()) {
    const id = rowId(w.record.key);
    const repeat = seen.has(id);
    seen.add(id);
    const expected = w.condition.expectedGeneration;
    // A create or a replacement (a login) takes the single path, as does a repeated key.
    if (repeat || typeof expected !== 'number' || expected === 0) {
      later.push(i);
      continue;
    }
    const owner = w.condition.leaseOwner === undefined ? undefined : owners.get(id);
    const refused = refusal(
      generations.get(id) as number | undefined,
      owner as string | undefined,
      w.condition,
    );
    if (refused !== undefined) results[i] = refused;
    else accepted.push(i);
  }
  let eventId = await applyAccepted(conn, client, writes, accepted, generations, results);
  for (const i of later) {
    const one = await single(writes[i] as CredentialWrite);
    results[i] = one.result;
    if (one.eventId !== undefined) eventId = Math.max(eventId ?? 0, one.eventId);
  }
  return { results: results as WriteResult[], ...(eventId === undefined ? {} : { eventId }) };
}

/** The batch's update and its events; fills in `results`; the newest event id. */
async function applyAccepted(
  conn: PgConnection,
  client: Queryable,
  writes: readonly CredentialWrite[],
  accepted: readonly number[],
  generations: Map<string, number | string>,
  results: (WriteResult | undefined)[],
): Promise<number | undefined> {
  const written = await updateRows(
    conn,
    client,
    accepted.map((i) => writes[i] as CredentialWrite),
  );
  const events: { write: CredentialWrite; generation: number }[] = [];
  for (const i of accepted) {
    const w = writes[i] as CredentialWrite;
    const generation = written.get(rowId(w.record.key));
    if (generation === undefined) {
      const current = generations.get(rowId(w.record.key)) as number | undefined;
      results[i] = {
        ok: false,
        reason: 'generation-mismatch',
        ...(current === undefined ? {} : { currentGeneration: current }),
      };
    } else {
      results[i] = { ok: true, generation };
      events.push({ write: w, generation });
    }
  }
  return insertEvents(client, events);
}

/** Release, in one statement, the leases on `keys` that `owner` holds. */
export async function releaseLeases(
  db: Queryable,
  keys: readonly CredentialKey[],
  owner: string,
): Promise<void> {
  if (keys.length === 0) return;
  await db.query(
    `DELETE FROM leases l USING unnest($1::text[], $2::text[], $3::text[]) AS k(server, issuer, subject)
     WHERE l.server = k.server AND l.issuer = k.issuer AND l.subject = k.subject AND l.owner = $4`,
    [...keyColumns(keys), owner],
  );
}

/** `column` of the rows of `table` on `keys`, locked in key order, by row id. */
async function lockedColumn(
  client: Queryable,
  table: 'credentials' | 'leases',
  column: 'generation' | 'owner',
  lock: 'FOR UPDATE' | 'FOR SHARE',
  keys: readonly CredentialKey[],
): Promise<Map<string, number | string>> {
  const { rows } = await client.query<{
    server: string;
    issuer: string;
    subject: string;
    v: number | string;
  }>(
    `SELECT t.server, t.issuer, t.subject, t.${column} AS v
     FROM ${table} t JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(server, issuer, subject)
       ON t.server = k.server AND t.issuer = k.issuer AND t.subject = k.subject
     ORDER BY t.server, t.issuer, t.subject ${lock} OF t`,
    keyColumns(keys),
  );
  return new Map(
    rows.map((r) => [
      `${r.server}\u0000${r.issuer}\u0000${r.subject}`,
      column === 'generation' ? Number(r.v) : r.v,
    ]),
  );
}

/** The generation-checked update of every accepted write: the new generation by row id. */
async function updateRows(
  conn: PgConnection,
  client: Queryable,
  writes: readonly CredentialWrite[],
): Promise<Map<string, number>> {
  if (writes.length === 0) return new Map();
  const now = Date.now();
  const cols: unknown[][] = [[], [], [], [], [], [], [], [], [], []];
  for (const w of writes) {
    const row = [...writtenValues(conn, w.record, w.event, now), w.condition.expectedGeneration];
    row.forEach((v, c) => cols[c]?.push(v));
  }
  const { rows } = await client.query<{
    server: string;
    issuer: string;
    subject: string;
    generation: string;
  }>(
    `UPDATE credentials c SET generation = c.generation + 1, secrets = v.secrets, record = v.record,
       status = v.status, updated_at = v.updated_at, refresh_at = v.refresh_at, due_at = v.due_at
     FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::bigint[],
       $8::bigint[], $9::bigint[], $10::bigint[])
       AS v(server, issuer, subject, secrets, record, status, updated_at, refresh_at, due_at, expected)
     WHERE c.server = v.server AND c.issuer = v.issuer AND c.subject = v.subject
       AND c.generation = v.expected
     RETURNING c.server, c.issuer, c.subject, c.generation`,
    cols,
  );
  return new Map(rows.map((r) => [`${r.server}\u0000${r.issuer}\u0000${r.subject}`, Number(r.generation)]));
}

/**
 * The batch's events in one insert under the event-order lock (postgres-events.ts says why),
 * and one NOTIFY of the newest id: a notice only moves a reader's high-water mark, and the
 * reader then reads every id after its cursor. Returns the newest id.
 */
async function insertEvents(
  client: Queryable,
  events: readonly { write: CredentialWrite; generation: number }[],
): Promise<number | undefined> {
  if (events.length === 0) return undefined;
  const cols: unknown[][] = [[], [], [], [], [], [], [], []];
  for (const { write, generation } of events) {
    const e = write.event;
    const row = [
      e.at ?? Date.now(),
      e.type,
      pgText(e.server),
      pgText(e.issuer),
      pgText(e.subject),
      generation,
      e.pid ?? process.pid,
      e.detail === undefined ? null : JSON.stringify(e.detail),
    ];
    row.forEach((v, c) => cols[c]?.push(v));
  }
  await client.query('SELECT pg_advisory_xact_lock($1)', [EVENT_ORDER_LOCK.toString()]);
  const { rows } = await client.query<{ id: string }>(
    `WITH ins AS (
       INSERT INTO events (at, type, server, issuer, subject, generation, pid, detail)
       SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
         $7::int[], $8::text[])
       RETURNING id)
     SELECT last.id, pg_notify($9, last.id::text) FROM (SELECT max(id) AS id FROM ins) last`,
    [...cols, EVENTS_CHANNEL],
  );
  return rows[0] === undefined ? undefined : Number(rows[0].id);
}

function keyColumns(keys: readonly CredentialKey[]): [string[], string[], string[]] {
  const cols: [string[], string[], string[]] = [[], [], []];
  for (const key of keys) keyValues(key).forEach((v, c) => cols[c]?.push(v));
  return cols;
}

function rowId(key: CredentialKey): string {
  return keyValues(key).join('\u0000');
}

/**
 * A written credential's column values, in the order of the credentials table's key, secrets,
 * record, status, updated_at, refresh_at and due_at: one write (postgres-credentials.ts) or many (writeBatch).
 */
export function writtenValues(
  conn: PgConnection,
  record: CredentialRecord,
  event: Pick<EventInput, 'type'>,
  now: number,
): unknown[] {
  const status: CredentialStatus =
    event.type === 'refreshed' ? { ...VALID_STATUS, lastRefreshAt: now } : VALID_STATUS;
  const sealed = sealCredential(conn.box, record);
  const refreshAt = refreshPointAt(record);
  return [
    ...keyValues(record.key),
    sealed.secrets,
    sealed.record,
    JSON.stringify(status),
    now,
    refreshAt ?? null,
    dueAt(refreshAt, status) ?? null,
  ];
}
