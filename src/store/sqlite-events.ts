import type Database from 'better-sqlite3';

import type { EventInput, EventLog, EventQuery, LifecycleEvent } from './contract.js';
import { type EventRow, eventFromRow } from './rows.js';
import type { SqliteConnection } from './sqlite-connection.js';

export const DEFAULT_WATCH_POLL_MS = 250;

/**
 * The event log on SQLite. Other processes' appends are noticed by polling
 * `PRAGMA data_version`, which changes only when another connection commits; this
 * connection's own appends nudge its watchers instead.
 */
export function sqliteEventLog(conn: SqliteConnection): EventLog {
  return {
    appendEvent: (event) => conn.write(() => insertEvent(conn, event)),
    readEvents: (query: EventQuery = {}) =>
      conn.run(() => eventsAfter(conn, query.afterId ?? 0, query.server, query.limit)),
    lastEventId: () => conn.run(() => maxEventId(conn)),
    watch: (listener, options = {}) => watch(conn, listener, options.pollMs ?? DEFAULT_WATCH_POLL_MS),
  };
}

/** Append inside the caller's transaction, so a change and its event commit together. */
export function insertEvent(conn: SqliteConnection, event: EventInput): LifecycleEvent {
  const row = conn.db
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
  for (const nudge of conn.watchers) nudge();
  return eventFromRow(row);
}

function watch(
  conn: SqliteConnection,
  listener: (events: LifecycleEvent[]) => void,
  pollMs: number,
): () => void {
  conn.assertOpen();
  let cursor = maxEventId(conn);
  let version = dataVersion(conn);
  let dirty = false;
  // A poll already scheduled (a nudge's setImmediate) must not call the listener once
  // the caller has unsubscribed.
  let subscribed = true;
  const deliver = (): void => {
    if (conn.closed || !subscribed) return;
    const now = dataVersion(conn);
    if (now === version && !dirty) return;
    version = now;
    dirty = false;
    const events = eventsAfter(conn, cursor);
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
  const timer = setInterval(poll, pollMs);
  timer.unref();
  // Our own writes do not change data_version for this connection; they nudge instead.
  const nudge = (): void => {
    dirty = true;
    setImmediate(poll);
  };
  conn.watchers.add(nudge);
  return () => {
    subscribed = false;
    clearInterval(timer);
    conn.watchers.delete(nudge);
  };
}

function eventsAfter(
  conn: SqliteConnection,
  afterId: number,
  server?: string,
  limit?: number,
): LifecycleEvent[] {
  const rows = conn.db
    .prepare(
      `SELECT * FROM events WHERE id > @afterId ${server === undefined ? '' : 'AND server = @server'}
       ORDER BY id LIMIT @limit`,
    )
    .all({ afterId, limit: limit ?? -1, ...(server === undefined ? {} : { server }) }) as EventRow[];
  return rows.map(eventFromRow);
}

function maxEventId(conn: SqliteConnection): number {
  return (conn.db.prepare(`SELECT COALESCE(MAX(id), 0) FROM events`).pluck().get() as number) ?? 0;
}

function dataVersion(conn: SqliteConnection): number {
  return conn.db.pragma('data_version', { simple: true }) as number;
}

/** The event log is a diagnosis aid, not an archive: keep the newest `keep`. */
export function pruneEvents(db: Database.Database, keep: number): void {
  db.prepare(`DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?`).run(keep);
}
