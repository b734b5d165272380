import type { KeyRecord, KeySource } from './data-key.js';
import { type DataKeyRing, sealedBy, sealedPrefix } from './envelope.js';
import {
  type KeyTable,
  type KeyTableState,
  openForReseal,
  sealedRowName,
  type WrappedKey,
} from './key-table.js';
import { fromPgText, type PgConnection, type Queryable } from './postgres-connection.js';
import { KEY_ROTATION_LOCK } from './postgres-schema.js';
import { ACTIVE_DATA_KEY, type DataKeyRow, sealedColumns, wrappedKeyOf } from './sealed-columns.js';

const pgKeyText = (value: unknown): string => fromPgText(String(value));
const SEALED = sealedColumns(pgKeyText);

export async function readKeyTable(db: Queryable): Promise<KeyTableState> {
  const { rows } = await db.query<DataKeyRow>('SELECT * FROM data_keys ORDER BY created_at, id, kek_id');
  return {
    active: await getMeta(db, ACTIVE_DATA_KEY),
    keys: rows.map(wrappedKeyOf),
  };
}

export async function insertKeys(db: Queryable, keys: readonly WrappedKey[], active?: string): Promise<void> {
  for (const key of keys) {
    await db.query(
      `INSERT INTO data_keys (id, kek_id, wrapped, created_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (id, kek_id) DO NOTHING`,
      [key.id, key.kekId, key.wrapped, key.createdAt],
    );
  }
  if (active !== undefined) await putMeta(db, ACTIVE_DATA_KEY, active);
}

export async function readKeyRecord(db: Queryable): Promise<KeyRecord | undefined> {
  const source = (await getMeta(db, 'key_source')) as KeySource | undefined;
  const fingerprint = await getMeta(db, 'key_fingerprint');
  return source === undefined || fingerprint === undefined ? undefined : { source, fingerprint };
}

export async function writeKeyRecord(db: Queryable, record: KeyRecord): Promise<void> {
  await putMeta(db, 'key_source', record.source);
  await putMeta(db, 'key_fingerprint', record.fingerprint);
}

async function getMeta(db: Queryable, name: string): Promise<string | undefined> {
  const { rows } = await db.query<{ value: string }>('SELECT value FROM meta WHERE name = $1', [name]);
  return rows[0]?.value;
}

async function putMeta(db: Queryable, name: string, value: string): Promise<void> {
  await db.query(
    'INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
    [name, value],
  );
}

/**
 * The rotation lock, exclusively until the transaction ends: every write in flight (each
 * holds it shared, see PgKeyTracking) has committed, and none starts meanwhile. Returns the
 * active key's id, read after the lock was granted.
 */
async function lockActive(db: Queryable): Promise<string | undefined> {
  await db.query('SELECT pg_advisory_xact_lock($1)', [KEY_ROTATION_LOCK.toString()]);
  return getMeta(db, ACTIVE_DATA_KEY);
}

/** How many values each DEK seals, across every sealed column. */
async function keyUsage(db: Queryable): Promise<Map<string, number>> {
  const usage = new Map<string, number>();
  for (const { table, column } of SEALED) {
    const { rows } = await db.query<{ head: Buffer; n: number }>(
      `SELECT substring(${column} from 1 for 9) AS head, count(*)::bigint AS n FROM ${table}
       WHERE ${column} IS NOT NULL GROUP BY head`,
    );
    for (const { head, n } of rows) {
      const id = sealedBy(head) ?? 'unreadable';
      usage.set(id, (usage.get(id) ?? 0) + Number(n));
    }
  }
  return usage;
}

/**
 * Where the last batch stopped, per table (its primary key), for the DEK it re-sealed to, as
 * in SQLite: each batch scans on from there, and "nothing left" always comes from a full scan.
 */
interface ResealCursor {
  activeId: string;
  after: Map<string, unknown[]>;
}

async function resealBatch(
  db: Queryable,
  ring: DataKeyRing,
  limit: number,
  cursor: ResealCursor,
): Promise<number> {
  if (cursor.activeId !== ring.activeId) {
    cursor.activeId = ring.activeId;
    cursor.after.clear();
  }
  const done = await resealFrom(db, ring, limit, cursor.after);
  if (done > 0 || cursor.after.size === 0) return done;
  cursor.after.clear(); // looked like the end: make sure with a full scan
  return resealFrom(db, ring, limit, cursor.after);
}

async function resealFrom(
  db: Queryable,
  ring: DataKeyRing,
  limit: number,
  after: Map<string, unknown[]>,
): Promise<number> {
  const prefix = sealedPrefix(ring.activeId);
  let done = 0;
  for (const column of SEALED) {
    if (done >= limit) break;
    const pk = column.primaryKey;
    const from = after.get(column.table);
    const params: unknown[] = [prefix, limit - done, ...(from ?? [])];
    const tuple = `(${pk.join(', ')})`;
    const position = from === undefined ? '' : `AND ${tuple} > (${pk.map((_, i) => `$${i + 3}`).join(', ')})`;
    const { rows } = await db.query<Record<string, unknown>>(
      `SELECT * FROM ${column.table}
       WHERE ${column.column} IS NOT NULL AND substring(${column.column} from 1 for 9) <> $1 ${position}
       ORDER BY ${pk.join(', ')} LIMIT $2`,
      params,
    );
    const match = pk.map((name, i) => `${name} = $${i + 3}`).join(' AND ');
    for (const row of rows) {
      const old = row[column.column] as Buffer;
      const aad = column.aad(row);
      const key = pk.map((name) => row[name]);
      await db.query(
        `UPDATE ${column.table} SET ${column.column} = $1 WHERE ${column.column} = $2 AND ${match}`,
        [
          ring.seal(openForReseal(ring, old, aad, sealedRowName(column.table, row, pgKeyText)), aad),
          old,
          ...key,
        ],
      );
      after.set(column.table, key);
      done += 1;
    }
  }
  return done;
}

/** KeyTable.prune, inside a transaction that holds the active key's row exclusively. */
async function prune(db: Queryable, kekId: string | undefined): Promise<string[]> {
  const active = await lockActive(db);
  const usage = await keyUsage(db);
  const { keys } = await readKeyTable(db);
  const ids = [...new Set(keys.map((k) => k.id))];
  const dropped = ids.filter((id) => id !== active && (usage.get(id) ?? 0) === 0);
  if (dropped.length > 0) await db.query('DELETE FROM data_keys WHERE id = ANY($1::text[])', [dropped]);
  const kept = ids.filter((id) => !dropped.includes(id));
  // Never strand a DEK: other KEKs' copies go only when every DEK left has one under kekId,
  // and only for the recorded KEK, so an instance still on an old KEK cannot undo a KEK change.
  if (kekId === undefined || (await readKeyRecord(db))?.fingerprint !== kekId) return dropped;
  if (kept.every((id) => keys.some((k) => k.id === id && k.kekId === kekId))) {
    await db.query('DELETE FROM data_keys WHERE kek_id <> $1', [kekId]);
  }
  return dropped;
}

/** The Postgres store's KeyTable: data_keys, the active id in meta, and three sealed columns. */
export function pgKeyTable(conn: PgConnection, ring: () => DataKeyRing): KeyTable {
  const cursor: ResealCursor = { activeId: '', after: new Map() };
  const exclusive = { checkKeys: false };
  return {
    read: () => conn.run(() => readKeyTable(conn.pool)),
    add: (keys, active) =>
      conn.tx(async (client) => {
        await lockActive(client);
        await insertKeys(client, keys, active);
      }, exclusive),
    // A write like any other: it checks the active key first, so it re-seals to the newest.
    reseal: (limit) => conn.tx((client) => resealBatch(client, ring(), limit, cursor)),
    usage: () => conn.run(() => keyUsage(conn.pool)),
    prune: (kekId) => conn.tx((client) => prune(client, kekId), exclusive),
    recordKek: (record) => conn.tx((client) => writeKeyRecord(client, record)),
  };
}
