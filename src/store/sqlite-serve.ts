import type { ServeTables } from './serve-contract.js';
import {
  type AppKeyRow,
  appKeyFromRow,
  type ConnectAttemptRow,
  openAttempt,
  rowValues,
  sealVerifier,
} from './serve-rows.js';
import type { SqliteConnection } from './sqlite-connection.js';
import { sqlitePortalTable } from './sqlite-portal.js';

/** The serve tables (app keys, connect attempts, portal grants) of the SQLite store. */
export function sqliteServeTables(conn: SqliteConnection): ServeTables {
  return {
    addAppKey: (record) =>
      conn.write(() => {
        conn.db
          .prepare(
            'INSERT INTO serve_app_keys (id, name, digest, created_at, subject_prefix) VALUES (?, ?, ?, ?, ?)',
          )
          .run(record.id, record.name, record.digest, record.createdAt, record.subjectPrefix ?? null);
      }),
    getAppKey: (id) =>
      conn.run(() => {
        const row = conn.db.prepare('SELECT * FROM serve_app_keys WHERE id = ?').get(id) as
          AppKeyRow | undefined;
        return row === undefined ? undefined : appKeyFromRow(row);
      }),
    listAppKeys: () =>
      conn.run(() =>
        (conn.db.prepare('SELECT * FROM serve_app_keys ORDER BY created_at, id').all() as AppKeyRow[]).map(
          appKeyFromRow,
        ),
      ),
    deleteAppKey: (id) =>
      conn.write(() => conn.db.prepare('DELETE FROM serve_app_keys WHERE id = ?').run(id).changes > 0),
    addConnectAttempt: (attempt) =>
      conn.write(() => {
        conn.db
          .prepare(
            `INSERT INTO serve_connect_attempts (id, subject, upstream, server, return_to, verifier,
               issuer, client_id, redirect_uri, resource, scope, created_at, expires_at)
             VALUES (@id, @subject, @upstream, @server, @return_to, @verifier, @issuer, @client_id,
               @redirect_uri, @resource, @scope, @created_at, @expires_at)`,
          )
          .run(rowValues(attempt, sealVerifier(conn.box, attempt)));
      }),
    takeConnectAttempt: (id, now = Date.now()) =>
      conn.write(() => {
        conn.db.prepare('DELETE FROM serve_connect_attempts WHERE expires_at <= ? AND id <> ?').run(now, id);
        const row = conn.db.prepare('DELETE FROM serve_connect_attempts WHERE id = ? RETURNING *').get(id) as
          ConnectAttemptRow | undefined;
        if (row === undefined || row.expires_at <= now) return undefined;
        return openAttempt(conn.box, row);
      }),
    ...sqlitePortalTable(conn),
  };
}
