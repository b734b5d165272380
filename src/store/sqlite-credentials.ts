import { dueAt, refreshPointAt } from '../credential/due.js';
import type { CredentialKey } from '../credential/key.js';
import type { CredentialRecord, CredentialStatus, StoredCredential } from '../credential/model.js';
import { type Refusal, refusal } from './condition.js';
import type {
  CredentialFilter,
  CredentialTable,
  EventInput,
  WriteCondition,
  WriteResult,
} from './contract.js';
import { KEY_WHERE, type KeyParams, keyParams, type SqliteConnection } from './sqlite-connection.js';
import { insertEvent } from './sqlite-events.js';
import { DUE_FROM_STATUS, dueParams } from './sqlite-due.js';
import { dropLease, leaseOf } from './sqlite-leases.js';
import { type CredentialRow, openCredential, sealCredential, VALID_STATUS } from './rows.js';

/**
 * Credentials on SQLite: tokens sealed with the data key, written compare-and-set on
 * generation and lease owner, each write with its event in one transaction.
 */
export function sqliteCredentialTable(conn: SqliteConnection): CredentialTable {
  return {
    getCredential: (key) =>
      conn.run(() => {
        const row = conn.db.prepare(`SELECT * FROM credentials WHERE ${KEY_WHERE}`).get(keyParams(key)) as
          CredentialRow | undefined;
        return row === undefined ? undefined : openCredential(conn.box, row);
      }),
    listCredentials: (filter = {}) => conn.run(() => list(conn, filter)),
    writeCredential: (record, condition, event) => conn.write(() => write(conn, record, condition, event)),
    writeCredentials: (writes) =>
      conn.write(() => writes.map((w) => write(conn, w.record, w.condition, w.event))),
    updateStatus: (key, status, event) =>
      conn.write(() => {
        const changed = conn.db
          .prepare(
            `UPDATE credentials SET status = @status, updated_at = @now, due_at = ${DUE_FROM_STATUS}
             WHERE ${KEY_WHERE}`,
          )
          .run({
            ...keyParams(key),
            status: JSON.stringify(status),
            now: Date.now(),
            ...dueParams(status),
          }).changes;
        if (changed > 0 && event !== undefined) insertEvent(conn, event);
      }),
    deleteCredential: (key, condition, event) => conn.write(() => remove(conn, key, condition, event)),
  };
}

function list(conn: SqliteConnection, filter: CredentialFilter): StoredCredential[] {
  const clauses = (['server', 'issuer', 'subject'] as const).filter((f) => filter[f] !== undefined);
  const where = clauses.length === 0 ? '' : `WHERE ${clauses.map((c) => `${c} = @${c}`).join(' AND ')}`;
  const rows = conn.db
    .prepare(`SELECT * FROM credentials ${where} ORDER BY server, issuer, subject`)
    .all(filter) as CredentialRow[];
  return rows.map((row) => openCredential(conn.box, row));
}

function write(
  conn: SqliteConnection,
  record: CredentialRecord,
  condition: WriteCondition,
  event: EventInput,
): WriteResult {
  const params = keyParams(record.key);
  const refused = checkCondition(conn, record.key, condition);
  if (refused !== undefined) return refused;
  const generation = (generationOf(conn, params) ?? 0) + 1;
  const now = Date.now();
  const status: CredentialStatus =
    event.type === 'refreshed' ? { ...VALID_STATUS, lastRefreshAt: now } : VALID_STATUS;
  const refreshAt = refreshPointAt(record) ?? null;
  conn.db
    .prepare(
      `INSERT INTO credentials (server, issuer, subject, generation, secrets, record, status, updated_at,
         refresh_at, due_at)
       VALUES (@server, @issuer, @subject, @generation, @secrets, @record, @status, @now, @refreshAt, @dueAt)
       ON CONFLICT (server, issuer, subject) DO UPDATE SET generation = excluded.generation,
         secrets = excluded.secrets, record = excluded.record, status = excluded.status,
         updated_at = excluded.updated_at, refresh_at = excluded.refresh_at, due_at = excluded.due_at`,
    )
    .run({
      ...params,
      ...sealCredential(conn.box, record),
      generation,
      status: JSON.stringify(status),
      now,
      refreshAt,
      dueAt: dueAt(refreshAt ?? undefined, status) ?? null,
    });
  insertEvent(conn, { ...event, generation });
  return { ok: true, generation };
}

function remove(
  conn: SqliteConnection,
  key: CredentialKey,
  condition: WriteCondition,
  event: EventInput,
): boolean {
  if (checkCondition(conn, key, condition) !== undefined) return false;
  const deleted =
    conn.db.prepare(`DELETE FROM credentials WHERE ${KEY_WHERE}`).run(keyParams(key)).changes > 0;
  dropLease(conn, key);
  if (deleted) insertEvent(conn, event);
  return deleted;
}

function checkCondition(
  conn: SqliteConnection,
  key: CredentialKey,
  condition: WriteCondition,
): Refusal | undefined {
  return refusal(generationOf(conn, keyParams(key)), leaseOf(conn, key)?.owner, condition);
}

function generationOf(conn: SqliteConnection, params: KeyParams): number | undefined {
  return conn.db.prepare(`SELECT generation FROM credentials WHERE ${KEY_WHERE}`).pluck().get(params) as
    number | undefined;
}
