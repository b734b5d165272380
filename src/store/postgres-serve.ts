import type { ServeTables } from './serve-contract.js';
import { DB_NOW_MS, type PgConnection } from './postgres-connection.js';
import { pgPortalTable } from './postgres-portal.js';
import {
  type AppKeyRow,
  appKeyFromRow,
  type ConnectAttemptRow,
  openAttempt,
  rowValues,
  sealVerifier,
} from './serve-rows.js';

/**
 * The serve tables (app keys, connect attempts) of the Postgres store. Taking an attempt is
 * one `DELETE … RETURNING`, so of two instances completing the same callback only one gets
 * the row; expiry is judged on the database clock unless the caller gives a time.
 */
export function pgServeTables(conn: PgConnection): ServeTables {
  return { ...pgAppKeys(conn), ...pgConnectAttempts(conn), ...pgPortalTable(conn) };
}

function pgAppKeys(
  conn: PgConnection,
): Pick<ServeTables, 'addAppKey' | 'getAppKey' | 'listAppKeys' | 'deleteAppKey'> {
  return {
    addAppKey: async (record) => {
      await conn.query(
        'INSERT INTO serve_app_keys (id, name, digest, created_at, subject_prefix) VALUES ($1, $2, $3, $4, $5)',
        [record.id, record.name, record.digest, record.createdAt, record.subjectPrefix ?? null],
      );
    },
    getAppKey: async (id) => {
      const rows = await conn.query<AppKeyRow>('SELECT * FROM serve_app_keys WHERE id = $1', [id]);
      return rows[0] === undefined ? undefined : appKeyFromRow(rows[0]);
    },
    listAppKeys: async () =>
      (await conn.query<AppKeyRow>('SELECT * FROM serve_app_keys ORDER BY created_at, id')).map(
        appKeyFromRow,
      ),
    deleteAppKey: async (id) =>
      (await conn.query<{ id: string }>('DELETE FROM serve_app_keys WHERE id = $1 RETURNING id', [id]))
        .length > 0,
  };
}

function pgConnectAttempts(
  conn: PgConnection,
): Pick<ServeTables, 'addConnectAttempt' | 'takeConnectAttempt'> {
  return {
    // Both attempt calls run in a transaction: it takes the key-rotation lock shared (so a
    // verifier is never sealed under a data key being retired), and a take whose verifier
    // cannot be opened yet rolls back and runs again after the key reload.
    addConnectAttempt: async (attempt) => {
      const row = rowValues(attempt, sealVerifier(conn.box, attempt));
      await conn.tx((client) =>
        client.query(
          `INSERT INTO serve_connect_attempts (id, subject, upstream, server, return_to, verifier, issuer,
           client_id, redirect_uri, resource, scope, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
          [
            row.id,
            row.subject,
            row.upstream,
            row.server,
            row.return_to,
            row.verifier,
            row.issuer,
            row.client_id,
            row.redirect_uri,
            row.resource,
            row.scope,
            row.created_at,
            row.expires_at,
          ],
        ),
      );
    },
    takeConnectAttempt: async (id, now) => {
      const clock = now === undefined ? DB_NOW_MS : '$2::bigint';
      const params = now === undefined ? [id] : [id, now];
      return conn.tx(async (client) => {
        const { rows } = await client.query<ConnectAttemptRow & { live: boolean }>(
          `WITH gone AS (DELETE FROM serve_connect_attempts WHERE id = $1 OR expires_at <= ${clock} RETURNING *)
         SELECT *, expires_at > ${clock} AS live FROM gone WHERE id = $1`,
          params,
        );
        const row = rows[0];
        if (row === undefined || !row.live) return undefined;
        return openAttempt(conn.box, row);
      });
    },
  };
}
