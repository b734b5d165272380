import { DB_NOW_MS, type PgConnection } from './postgres-connection.js';
import type { PortalGrant, PortalTable } from './serve-contract.js';

interface GrantRow {
  id: string;
  subject: string;
  created_at: string | number;
  expires_at: string | number;
}

function grantOf(row: GrantRow): PortalGrant {
  return {
    id: row.id,
    subject: row.subject,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
  };
}

/**
 * The portal's links and sessions in the Postgres store. Taking a link is one `DELETE …
 * RETURNING`, so of two instances opening the same link only one signs the browser in;
 * expiry is judged on the database clock unless the caller gives a time.
 */
export function pgPortalTable(conn: PgConnection): PortalTable {
  const insert = async (table: string, grant: PortalGrant): Promise<void> => {
    await conn.query(`DELETE FROM ${table} WHERE expires_at <= ${DB_NOW_MS}`);
    await conn.query(`INSERT INTO ${table} (id, subject, created_at, expires_at) VALUES ($1, $2, $3, $4)`, [
      grant.id,
      grant.subject,
      grant.createdAt,
      grant.expiresAt,
    ]);
  };
  return {
    addPortalLink: (link) => insert('serve_portal_links', link),
    takePortalLink: async (id, now) => {
      const clock = now === undefined ? DB_NOW_MS : '$2::bigint';
      const rows = await conn.query<GrantRow & { live: boolean }>(
        `WITH gone AS (DELETE FROM serve_portal_links WHERE id = $1 OR expires_at <= ${clock} RETURNING *)
         SELECT *, expires_at > ${clock} AS live FROM gone WHERE id = $1`,
        now === undefined ? [id] : [id, now],
      );
      const row = rows[0];
      return row === undefined || !row.live ? undefined : grantOf(row);
    },
    addPortalSession: (session) => insert('serve_portal_sessions', session),
    getPortalSession: async (id, now) => {
      const clock = now === undefined ? DB_NOW_MS : '$2::bigint';
      const rows = await conn.query<GrantRow>(
        `SELECT * FROM serve_portal_sessions WHERE id = $1 AND expires_at > ${clock}`,
        now === undefined ? [id] : [id, now],
      );
      return rows[0] === undefined ? undefined : grantOf(rows[0]);
    },
    deletePortalSession: async (id) =>
      (await conn.query('DELETE FROM serve_portal_sessions WHERE id = $1 RETURNING id', [id])).length > 0,
  };
}
