/** The DPoP key table on Postgres: as on SQLite (dpop-keys.ts), insert-if-absent, then read. */
import type { DPoPKeyTable } from './contract.js';
import { type DPoPKeyRow, openKey } from './dpop-keys.js';
import { fromPgText, pgText, type PgConnection } from './postgres-connection.js';
import { dpopKeyAad } from './rows.js';

export function pgDPoPKeys(conn: PgConnection): DPoPKeyTable {
  return {
    dpopKey: (alg, create) =>
      conn.tx(async (client) => {
        const select = async () =>
          (await client.query<DPoPKeyRow>(`SELECT * FROM dpop_keys WHERE alg = $1`, [pgText(alg)])).rows[0];
        let row = await select();
        if (row === undefined) {
          const fresh = create();
          await client.query(
            `INSERT INTO dpop_keys (alg, private_jwk, created_at) VALUES ($1, $2, $3) ON CONFLICT (alg) DO NOTHING`,
            [pgText(alg), conn.box.seal(fresh.privateJwk, dpopKeyAad(alg)), fresh.createdAt],
          );
          row = await select();
        }
        if (row === undefined) throw new Error('the DPoP key row vanished while it was written');
        return openKey(conn.box, { ...row, alg: fromPgText(row.alg) });
      }),
  };
}
