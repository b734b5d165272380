import type { DiscoveryCache, RegistrationCache } from './contract.js';
import { fromPgText, pgText, type PgConnection } from './postgres-connection.js';
import {
  discoveryFromRow,
  type DiscoveryRow,
  openRegistration,
  type RegistrationRow,
  sealRegistration,
} from './rows.js';

/** Registrations on Postgres, one per issuer; a client secret is sealed with the data key. */
export function pgRegistrationCache(conn: PgConnection): RegistrationCache {
  return {
    getRegistration: (issuer) =>
      conn.run(async () => {
        const { rows } = await conn.pool.query<RegistrationRow>(
          `SELECT * FROM registrations WHERE issuer = $1`,
          [pgText(issuer)],
        );
        const row = rows[0];
        return row === undefined
          ? undefined
          : openRegistration(conn.box, { ...row, issuer: fromPgText(row.issuer) });
      }),
    // A transaction, though one statement: it must check the active data key first.
    putRegistration: (registration) =>
      conn.tx(async (client) => {
        const sealed = sealRegistration(conn.box, registration);
        await client.query(
          `INSERT INTO registrations (issuer, record, client_secret) VALUES ($1, $2, $3)
           ON CONFLICT (issuer) DO UPDATE SET record = excluded.record, client_secret = excluded.client_secret`,
          [pgText(registration.issuer), sealed.record, sealed.client_secret],
        );
      }),
    deleteRegistration: (issuer) =>
      conn.run(async () => {
        await conn.pool.query(`DELETE FROM registrations WHERE issuer = $1`, [pgText(issuer)]);
      }),
  };
}

/** The discovery cache on Postgres: public documents, stored as fetched. */
export function pgDiscoveryCache(conn: PgConnection): DiscoveryCache {
  return {
    getDiscovery: (kind, id) =>
      conn.run(async () => {
        const { rows } = await conn.pool.query<DiscoveryRow>(
          `SELECT * FROM discovery WHERE kind = $1 AND id = $2`,
          [kind, pgText(id)],
        );
        return rows[0] === undefined ? undefined : discoveryFromRow(rows[0], fromPgText);
      }),
    putDiscovery: (record) =>
      conn.run(async () => {
        await conn.pool.query(
          `INSERT INTO discovery (kind, id, document, source_url, fetched_at) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (kind, id) DO UPDATE SET document = excluded.document, source_url = excluded.source_url,
             fetched_at = excluded.fetched_at`,
          [
            record.kind,
            pgText(record.id),
            JSON.stringify(record.document),
            record.sourceUrl,
            record.fetchedAt,
          ],
        );
      }),
    deleteDiscovery: (kind, id) =>
      conn.run(async () => {
        await conn.pool.query(`DELETE FROM discovery WHERE kind = $1 AND id = $2`, [kind, pgText(id)]);
      }),
  };
}
