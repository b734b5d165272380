import type { EventInput, EventLog, EventQuery, LifecycleEvent } from './contract.js';
import { decodeKey, pgFilter, pgText, type PgConnection, type Queryable } from './postgres-connection.js';
import type { PgEventFeed } from './postgres-listen.js';
import { EVENT_ORDER_LOCK } from './postgres-schema.js';
import { type EventRow, eventFromRow } from './rows.js';

/** The NOTIFY channel every commit that appended events signals. */
export const EVENTS_CHANNEL = 'latchkey_events';

/**
 * The event log on Postgres. Appends notify `latchkey_events`; each store's one LISTEN
 * connection (postgres-listen.ts) turns notices into reads of the table, which stays the
 * source of truth.
 */
export function pgEventLog(conn: PgConnection, feed: PgEventFeed): EventLog {
  return {
    appendEvent: async (event) => {
      const appended = await conn.tx((client) => insertEvent(client, event));
      feed.saw(appended.id);
      return appended;
    },
    readEvents: (query: EventQuery = {}) =>
      conn.run(() => eventsAfter(conn.pool, query.afterId ?? 0, query.server, query.limit)),
    lastEventId: () => conn.run(() => maxEventId(conn.pool)),
    watch: (listener) => feed.subscribe(listener),
  };
}

/**
 * Append inside the caller's transaction, so a change and its event commit together.
 *
 * The transaction-scoped lock makes commit order equal id order: a sequence hands out ids at
 * insert time, and without it a reader could see id 7 committed while id 6 is still in
 * flight, move its cursor past 6 and never deliver it. Held from here to commit only, so
 * callers append their event last.
 */
export async function insertEvent(client: Queryable, event: EventInput): Promise<LifecycleEvent> {
  await client.query('SELECT pg_advisory_xact_lock($1)', [EVENT_ORDER_LOCK.toString()]);
  const { rows } = await client.query<EventRow>(
    `INSERT INTO events (at, type, server, issuer, subject, generation, pid, detail)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
    [
      event.at ?? Date.now(),
      event.type,
      pgText(event.server),
      pgText(event.issuer),
      pgText(event.subject),
      event.generation ?? null,
      event.pid ?? process.pid,
      event.detail === undefined ? null : JSON.stringify(event.detail),
    ],
  );
  const row = rows[0];
  if (row === undefined) throw new Error('the event insert returned no row');
  // Delivered to every listener when (and only if) the transaction commits.
  await client.query('SELECT pg_notify($1, $2)', [EVENTS_CHANNEL, String(row.id)]);
  return eventFromRow(decodeKey(row));
}

export async function eventsAfter(
  db: Queryable,
  afterId: number,
  server?: string,
  limit?: number,
): Promise<LifecycleEvent[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT * FROM events WHERE id > $1 AND ($2::text IS NULL OR server = $2)
     ORDER BY id LIMIT $3`,
    [afterId, pgFilter(server), limit ?? null],
  );
  return rows.map((row) => eventFromRow(decodeKey(row)));
}

export async function maxEventId(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ id: number }>(`SELECT COALESCE(MAX(id), 0) AS id FROM events`);
  return Number(rows[0]?.id ?? 0);
}

/** The event log is a diagnosis aid, not an archive: keep the newest `keep`. */
export async function pruneEvents(db: Queryable, keep: number): Promise<void> {
  await db.query(`DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - $1`, [keep]);
}
