import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import { createSecretBox } from './crypto.js';
import { type KeyRecord, type KeySource, resolveDataKey, type ResolvedKey } from './data-key.js';
import type { Queryable } from './postgres-connection.js';
import { KEY_SETUP_LOCK } from './postgres-schema.js';

/**
 * The data key of a Postgres store, in one module so it can be swapped for envelope
 * encryption later. The key comes from `LATCHKEY_KEY` or the OS keyring, never a key file:
 * a file beside a shared database protects nothing, and each instance would have its own.
 * A fleet sets `LATCHKEY_KEY` on every instance; the keyring suits one machine.
 *
 * The key's fingerprint is recorded in the store's `meta` table by the first instance (under
 * an advisory lock, so instances starting together agree on one key). Unlike SQLite, a
 * mismatching key is refused even on an empty store: another instance may be writing with
 * the recorded key right now, and two keys in one store would make rows unreadable.
 */
export type PgKeyStorage = 'auto' | 'keyring';

export interface PgKeyOptions {
  env: NodeJS.ProcessEnv;
  keyStorage: PgKeyStorage;
  keyringTimeoutMs?: number;
  /** A stable, password-free name of the database, naming the keyring entry. */
  identity: string;
}

/** Find (or, for a new store, create and record) the key; `client` must be inside a transaction. */
export async function setUpPgKey(client: Queryable, options: PgKeyOptions): Promise<ResolvedKey> {
  await client.query('SELECT pg_advisory_xact_lock($1)', [KEY_SETUP_LOCK.toString()]);
  const recorded = await readKeyRecord(client);
  let found: ResolvedKey;
  try {
    found = await resolveDataKey(
      {
        // The keyring entry is named after `home`; a database's identity plays that part.
        home: `postgres:${options.identity}`,
        keyStorage: 'keyring',
        env: options.env,
        ...(options.keyringTimeoutMs === undefined ? {} : { keyringTimeoutMs: options.keyringTimeoutMs }),
      },
      recorded,
      () => true,
    );
  } catch (error) {
    throw isLatchkeyError(error) && error.code === ErrorCode.KEYRING_UNAVAILABLE ? noKey(error) : error;
  }
  const fingerprint = createSecretBox(found.key).fingerprint;
  if (recorded === undefined) await writeKeyRecord(client, { source: found.source, fingerprint });
  else if (recorded.fingerprint !== fingerprint) throw mismatch();
  return found;
}

function noKey(cause: LatchkeyError): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.KEYRING_UNAVAILABLE,
    'a PostgreSQL store needs its data key from LATCHKEY_KEY or the OS keyring, and neither is available ' +
      '(a key file is not offered for a shared database).',
    {
      retryable: cause.retryable,
      next: {
        kind: 'configure',
        detail: 'set LATCHKEY_KEY (the same 32-byte key on every instance), or unlock the OS keyring',
      },
      cause,
    },
  );
}

function mismatch(): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.STORE_KEY_MISMATCH,
    'this PostgreSQL store was set up with a different data key than the one given.',
    {
      retryable: false,
      next: {
        kind: 'repair-store',
        detail: 'use the key the store was created with (LATCHKEY_KEY on every instance)',
      },
    },
  );
}

async function readKeyRecord(client: Queryable): Promise<KeyRecord | undefined> {
  const { rows } = await client.query<{ name: string; value: string }>(
    `SELECT name, value FROM meta WHERE name IN ('key_source', 'key_fingerprint')`,
  );
  const source = rows.find((r) => r.name === 'key_source')?.value as KeySource | undefined;
  const fingerprint = rows.find((r) => r.name === 'key_fingerprint')?.value;
  return source === undefined || fingerprint === undefined ? undefined : { source, fingerprint };
}

async function writeKeyRecord(client: Queryable, record: KeyRecord): Promise<void> {
  await client.query(
    `INSERT INTO meta (name, value) VALUES ('key_source', $1), ('key_fingerprint', $2)
     ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
    [record.source, record.fingerprint],
  );
}
