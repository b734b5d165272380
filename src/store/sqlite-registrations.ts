import type { DiscoveryCache, RegistrationCache } from './contract.js';
import type { SqliteConnection } from './sqlite-connection.js';
import {
  discoveryFromRow,
  type DiscoveryRow,
  openRegistration,
  type RegistrationRow,
  sealRegistration,
} from './rows.js';

/** Registrations on SQLite, one per issuer; a client secret is sealed with the data key. */
export function sqliteRegistrationCache(conn: SqliteConnection): RegistrationCache {
  return {
    getRegistration: (issuer) =>
      conn.run(() => {
        const row = conn.db.prepare(`SELECT * FROM registrations WHERE issuer = ?`).get(issuer) as
          RegistrationRow | undefined;
        return row === undefined ? undefined : openRegistration(conn.box, row);
      }),
    putRegistration: (registration) =>
      conn.write(() => {
        conn.db
          .prepare(
            `INSERT INTO registrations (issuer, record, client_secret) VALUES (@issuer, @record, @client_secret)
             ON CONFLICT (issuer) DO UPDATE SET record = excluded.record, client_secret = excluded.client_secret`,
          )
          .run({ issuer: registration.issuer, ...sealRegistration(conn.box, registration) });
      }),
    deleteRegistration: (issuer) =>
      conn.write(() => {
        conn.db.prepare(`DELETE FROM registrations WHERE issuer = ?`).run(issuer);
      }),
  };
}

/** The discovery cache on SQLite: public documents, stored as fetched. */
export function sqliteDiscoveryCache(conn: SqliteConnection): DiscoveryCache {
  return {
    getDiscovery: (kind, id) =>
      conn.run(() => {
        const row = conn.db.prepare(`SELECT * FROM discovery WHERE kind = ? AND id = ?`).get(kind, id) as
          DiscoveryRow | undefined;
        return row === undefined ? undefined : discoveryFromRow(row);
      }),
    putDiscovery: (record) =>
      conn.write(() => {
        conn.db
          .prepare(
            `INSERT INTO discovery (kind, id, document, source_url, fetched_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (kind, id) DO UPDATE SET document = excluded.document, source_url = excluded.source_url,
               fetched_at = excluded.fetched_at`,
          )
          .run(record.kind, record.id, JSON.stringify(record.document), record.sourceUrl, record.fetchedAt);
      }),
    deleteDiscovery: (kind, id) =>
      conn.write(() => {
        conn.db.prepare(`DELETE FROM discovery WHERE kind = ? AND id = ?`).run(kind, id);
      }),
  };
}
