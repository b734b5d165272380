/**
 * The DPoP key table on SQLite (Postgres: postgres-dpop-keys.ts): one row per algorithm, the
 * private JWK sealed with the data key like a token (associated data `dpop-key\0<alg>`), so
 * a copied database file without its key reveals nothing. Insert-if-absent, then read: the
 * first process to store a key wins, and every other process (and every restart) signs with
 * that one.
 */
import { ErrorCode, LatchkeyError } from '../errors.js';
import type { DPoPKeyRecord, DPoPKeyTable } from './contract.js';
import type { SecretBox } from './crypto.js';
import { UnknownDataKeyError } from './envelope.js';
import { dpopKeyAad } from './rows.js';
import type { SqliteConnection } from './sqlite-connection.js';

export interface DPoPKeyRow {
  alg: string;
  private_jwk: Buffer;
  created_at: number | string;
}

export function sqliteDPoPKeys(conn: SqliteConnection): DPoPKeyTable {
  return {
    dpopKey: (alg, create) =>
      conn.write(() => {
        const select = conn.db.prepare(`SELECT * FROM dpop_keys WHERE alg = ?`);
        let row = select.get(alg) as DPoPKeyRow | undefined;
        if (row === undefined) {
          const fresh = create();
          conn.db
            .prepare(`INSERT INTO dpop_keys (alg, private_jwk, created_at) VALUES (?, ?, ?)`)
            .run(alg, conn.box.seal(fresh.privateJwk, dpopKeyAad(alg)), fresh.createdAt);
          row = select.get(alg) as DPoPKeyRow;
        }
        return openKey(conn.box, row);
      }),
  };
}

export function openKey(box: SecretBox, row: DPoPKeyRow): DPoPKeyRecord {
  try {
    return {
      alg: row.alg,
      privateJwk: box.open(row.private_jwk, dpopKeyAad(row.alg)),
      createdAt: Number(row.created_at),
    };
  } catch (cause) {
    if (cause instanceof UnknownDataKeyError) throw cause;
    throw new LatchkeyError(
      ErrorCode.STORE_KEY_MISMATCH,
      `the stored DPoP key cannot be decrypted with the current data key.`,
      { retryable: false, next: { kind: 'repair-store', detail: 'restore the original data key' }, cause },
    );
  }
}
