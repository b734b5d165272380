import type Database from 'better-sqlite3';

import type { KeyRecord, KeySource } from './data-key.js';
import { type DataKeyRing, sealedBy, sealedPrefix } from './envelope.js';
import {
  type KeyTable,
  type KeyTableState,
  openForReseal,
  sealedRowName,
  type WrappedKey,
} from './key-table.js';
import type { SqliteConnection } from './sqlite-connection.js';
import { ACTIVE_DATA_KEY, type DataKeyRow, sealedColumns, wrappedKeyOf } from './sealed-columns.js';

const SEALED = sealedColumns(String);

/** A column of sealed values, and how to rebuild the associated data each value is bound to. */

export function readKeyTable(db: Database.Database): KeyTableState {
  const rows = db.prepare('SELECT * FROM data_keys ORDER BY created_at, id').all() as DataKeyRow[];
  const active = db.prepare('SELECT value FROM meta WHERE name = ?').pluck().get(ACTIVE_DATA_KEY) as
    string | undefined;
  return {
    active,
    keys: rows.map(wrappedKeyOf),
  };
}

export function insertKeys(db: Database.Database, keys: readonly WrappedKey[], active?: string): void {
  const insert = db.prepare(
    `INSERT INTO data_keys (id, kek_id, wrapped, created_at) VALUES (@id, @kekId, @wrapped, @createdAt)
     ON CONFLICT (id, kek_id) DO NOTHING`,
  );
  for (const key of keys) insert.run(key);
  if (active !== undefined) putMeta(db, ACTIVE_DATA_KEY, active);
}

export function writeKeyRecord(db: Database.Database, record: KeyRecord): void {
  putMeta(db, 'key_source', record.source);
  putMeta(db, 'key_fingerprint', record.fingerprint);
}

export function readKeyRecord(db: Database.Database): KeyRecord | undefined {
  const get = db.prepare('SELECT value FROM meta WHERE name = ?').pluck();
  const source = get.get('key_source') as KeySource | undefined;
  const fingerprint = get.get('key_fingerprint') as string | undefined;
  return source === undefined || fingerprint === undefined ? undefined : { source, fingerprint };
}

function putMeta(db: Database.Database, name: string, value: string): void {
  db.prepare(
    'INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
  ).run(name, value);
}

/** The active DEK's id as the database has it now; read inside every write transaction. */
export function activeKeyStatement(db: Database.Database): () => string | undefined {
  const statement = db.prepare('SELECT value FROM meta WHERE name = ?').pluck();
  return () => statement.get(ACTIVE_DATA_KEY) as string | undefined;
}

/** How many values each DEK seals, across every sealed column. */
export function keyUsage(db: Database.Database): Map<string, number> {
  const usage = new Map<string, number>();
  for (const { table, column } of SEALED) {
    const rows = db
      .prepare(
        `SELECT substr(${column}, 1, 9) AS head, count(*) AS n FROM ${table}
         WHERE ${column} IS NOT NULL GROUP BY head`,
      )
      .all() as { head: Buffer; n: number }[];
    for (const { head, n } of rows) {
      const id = sealedBy(head) ?? 'unreadable';
      usage.set(id, (usage.get(id) ?? 0) + n);
    }
  }
  return usage;
}

export function hasLegacyValues(db: Database.Database): boolean {
  return SEALED.some(
    ({ table, column }) =>
      db
        .prepare(`SELECT EXISTS (SELECT 1 FROM ${table} WHERE substr(${column}, 1, 1) = X'01')`)
        .pluck()
        .get() === 1,
  );
}

/**
 * Where the last batch stopped, per table, for the DEK it re-sealed to: each batch scans on
 * from there instead of from the first row, so a rotation reads each row about once. A value
 * behind the cursor can only have been written with the active DEK, but the final answer
 * ("nothing left") always comes from a scan of the whole table, so a cursor is only a hint.
 */
interface ResealCursor {
  activeId: string;
  after: Map<string, number>;
}

/** Re-seal up to `limit` values not sealed by the active DEK. Runs inside a write transaction. */
function resealBatch(db: Database.Database, ring: DataKeyRing, limit: number, cursor: ResealCursor): number {
  if (cursor.activeId !== ring.activeId) {
    cursor.activeId = ring.activeId;
    cursor.after.clear();
  }
  const done = resealFrom(db, ring, limit, cursor.after);
  if (done > 0 || cursor.after.size === 0) return done;
  cursor.after.clear(); // looked like the end: make sure with a full scan
  return resealFrom(db, ring, limit, cursor.after);
}

function resealFrom(
  db: Database.Database,
  ring: DataKeyRing,
  limit: number,
  after: Map<string, number>,
): number {
  const prefix = sealedPrefix(ring.activeId);
  let done = 0;
  for (const column of SEALED) {
    if (done >= limit) break;
    const rows = db
      .prepare(
        `SELECT rowid AS row_id, * FROM ${column.table}
         WHERE rowid > @after AND ${column.column} IS NOT NULL AND substr(${column.column}, 1, 9) <> @prefix
         ORDER BY rowid LIMIT @limit`,
      )
      .all({ prefix, after: after.get(column.table) ?? 0, limit: limit - done }) as Record<string, unknown>[];
    const update = db.prepare(
      `UPDATE ${column.table} SET ${column.column} = @sealed WHERE rowid = @rowId AND ${column.column} = @old`,
    );
    for (const row of rows) {
      const old = row[column.column] as Buffer;
      const aad = column.aad(row);
      update.run({
        sealed: ring.seal(openForReseal(ring, old, aad, sealedRowName(column.table, row, String)), aad),
        rowId: row['row_id'],
        old,
      });
      after.set(column.table, row['row_id'] as number);
      done += 1;
    }
  }
  return done;
}

function prune(db: Database.Database, active: string | undefined, kekId: string | undefined): string[] {
  const usage = keyUsage(db);
  const { keys } = readKeyTable(db);
  const ids = [...new Set(keys.map((k) => k.id))];
  const dropped = ids.filter((id) => id !== active && (usage.get(id) ?? 0) === 0);
  const remove = db.prepare('DELETE FROM data_keys WHERE id = ?');
  for (const id of dropped) remove.run(id);
  const kept = ids.filter((id) => !dropped.includes(id));
  // Never strand a DEK: other KEKs' copies go only when every DEK left has one under kekId,
  // and only for the recorded KEK, so a process still on an old KEK cannot undo a KEK change.
  if (kekId === undefined || readKeyRecord(db)?.fingerprint !== kekId) return dropped;
  if (kept.every((id) => keys.some((k) => k.id === id && k.kekId === kekId))) {
    db.prepare('DELETE FROM data_keys WHERE kek_id <> ?').run(kekId);
  }
  return dropped;
}

/** The SQLite store's KeyTable: data_keys, the active id in meta, and three sealed columns. */
export function sqliteKeyTable(conn: SqliteConnection, ring: () => DataKeyRing): KeyTable {
  const cursor: ResealCursor = { activeId: '', after: new Map() };
  return {
    read: () => conn.run(() => readKeyTable(conn.db)),
    add: (keys, active) => conn.write(() => insertKeys(conn.db, keys, active)),
    reseal: (limit) => conn.write(() => resealBatch(conn.db, ring(), limit, cursor)),
    usage: () => conn.run(() => keyUsage(conn.db)),
    prune: (kekId) => conn.write(() => prune(conn.db, activeKeyStatement(conn.db)(), kekId)),
    recordKek: (record) => conn.write(() => writeKeyRecord(conn.db, record)),
  };
}
