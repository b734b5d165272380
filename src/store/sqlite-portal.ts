import type { PortalGrant, PortalTable } from './serve-contract.js';
import type { SqliteConnection } from './sqlite-connection.js';

interface GrantRow {
  id: string;
  subject: string;
  created_at: number;
  expires_at: number;
}

function grantOf(row: GrantRow): PortalGrant {
  return {
    id: row.id,
    subject: row.subject,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
  };
}

/** The portal's links and sessions in the SQLite store (serve-contract.ts PortalTable). */
export function sqlitePortalTable(conn: SqliteConnection): PortalTable {
  const insert = (table: string, grant: PortalGrant, now: number): void => {
    conn.db.prepare(`DELETE FROM ${table} WHERE expires_at <= ?`).run(now);
    conn.db
      .prepare(`INSERT INTO ${table} (id, subject, created_at, expires_at) VALUES (?, ?, ?, ?)`)
      .run(grant.id, grant.subject, grant.createdAt, grant.expiresAt);
  };
  return {
    addPortalLink: (link) => conn.write(() => insert('serve_portal_links', link, Date.now())),
    takePortalLink: (id, now = Date.now()) =>
      conn.write(() => {
        conn.db.prepare('DELETE FROM serve_portal_links WHERE expires_at <= ? AND id <> ?').run(now, id);
        const row = conn.db.prepare('DELETE FROM serve_portal_links WHERE id = ? RETURNING *').get(id) as
          GrantRow | undefined;
        return row === undefined || row.expires_at <= now ? undefined : grantOf(row);
      }),
    addPortalSession: (session) => conn.write(() => insert('serve_portal_sessions', session, Date.now())),
    getPortalSession: (id, now = Date.now()) =>
      conn.run(() => {
        const row = conn.db
          .prepare('SELECT * FROM serve_portal_sessions WHERE id = ? AND expires_at > ?')
          .get(id, now) as GrantRow | undefined;
        return row === undefined ? undefined : grantOf(row);
      }),
    deletePortalSession: (id) =>
      conn.write(() => conn.db.prepare('DELETE FROM serve_portal_sessions WHERE id = ?').run(id).changes > 0),
  };
}
