/**
 * Where each store keeps sealed values, and how a row's associated data is rebuilt: what a
 * rekey walks and re-seals, and what it checks before it drops an old data key. Both stores
 * have the same tables; they differ only in how key columns hold text (`text`).
 */
import type { WrappedKey } from './key-table.js';
import { revocationAad } from './revocation-rows.js';
import { credentialAad, dpopKeyAad, registrationAad } from './rows.js';
import { connectAttemptAad } from './serve-rows.js';

export interface SealedColumn {
  table: string;
  column: string;
  /** The table's primary key: a re-seal walks the table in its order. */
  primaryKey: readonly string[];
  aad(row: Record<string, unknown>): string;
}

/** The sealed columns, reading key columns with `text` (Postgres stores them escaped). */
export function sealedColumns(text: (value: unknown) => string): readonly SealedColumn[] {
  const keyOf = (r: Record<string, unknown>) => ({
    server: text(r['server']),
    issuer: text(r['issuer']),
    subject: text(r['subject']),
  });
  return [
    {
      table: 'credentials',
      column: 'secrets',
      primaryKey: ['server', 'issuer', 'subject'],
      aad: (r) => credentialAad(keyOf(r)),
    },
    {
      table: 'registrations',
      column: 'client_secret',
      primaryKey: ['issuer'],
      aad: (r) => registrationAad(text(r['issuer'])),
    },
    {
      table: 'pending_revocations',
      column: 'secrets',
      primaryKey: ['id'],
      aad: (r) =>
        revocationAad(String(r['id']), {
          key: keyOf(r),
          tokenType: String(r['token_type']) as 'refresh_token',
        }),
    },
    {
      table: 'dpop_keys',
      column: 'private_jwk',
      primaryKey: ['alg'],
      aad: (r) => dpopKeyAad(text(r['alg'])),
    },
    {
      table: 'serve_connect_attempts',
      column: 'verifier',
      primaryKey: ['id'],
      aad: (r) => connectAttemptAad(String(r['id'])),
    },
  ];
}

/** The meta row naming the data key new writes use. */
export const ACTIVE_DATA_KEY = 'active_data_key';

/** A data_keys row, as both stores hold it. */
export interface DataKeyRow {
  id: string;
  kek_id: string;
  wrapped: Buffer;
  created_at: number;
}

export function wrappedKeyOf(r: DataKeyRow): WrappedKey {
  return { id: r.id, kekId: r.kek_id, wrapped: r.wrapped, createdAt: r.created_at };
}
