import { newDataKey } from './crypto.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import { type KeyRecord, type KeySource, resolveDataKey } from './data-key.js';
import { DataKeyRing, localKeyProvider, newKeyId } from './envelope.js';
import type { Queryable } from './postgres-connection.js';
import { KEY_SETUP_LOCK } from './postgres-schema.js';

/**
 * The keys of a Postgres store, in one module so the full envelope machinery (a key table,
 * `store rekey`) can replace it. Secrets are sealed exactly as in SQLite (envelope.ts, layout
 * v2): under one data key (DEK) kept in the `meta` table, wrapped by a key-encryption key
 * (KEK) from `LATCHKEY_KEY` or the OS keyring, never a key file: a file beside a shared
 * database protects nothing, and each instance would make its own. A fleet sets
 * `LATCHKEY_KEY` on every instance; the keyring suits one machine.
 *
 * The first instance (under an advisory lock, so instances starting together agree) records
 * the KEK's fingerprint and the wrapped DEK. Unlike SQLite, a mismatching KEK is refused even
 * on an empty store: another instance may be writing with the recorded one right now.
 */
export type PgKeyStorage = 'auto' | 'keyring';

export interface PgKeyOptions {
  env: NodeJS.ProcessEnv;
  keyStorage: PgKeyStorage;
  keyringTimeoutMs?: number;
  /** A stable, password-free name of the database, naming the keyring entry. */
  identity: string;
}

export interface PgKeys {
  box: DataKeyRing;
  source: KeySource;
}

/** Find (or, for a new store, create and record) the keys; `client` must be inside a transaction. */
export async function setUpPgKey(client: Queryable, options: PgKeyOptions): Promise<PgKeys> {
  await client.query('SELECT pg_advisory_xact_lock($1)', [KEY_SETUP_LOCK.toString()]);
  const meta = await readMeta(client);
  const recorded: KeyRecord | undefined =
    meta.key_source === undefined || meta.key_fingerprint === undefined
      ? undefined
      : { source: meta.key_source as KeySource, fingerprint: meta.key_fingerprint };
  const kek = await findKek(options, recorded);
  const provider = localKeyProvider(kek.key);
  if (recorded === undefined) {
    const id = newKeyId();
    const dek = newDataKey();
    const wrapped = (await provider.wrap(dek)).toString('base64');
    await writeMeta(client, {
      key_source: kek.source,
      key_fingerprint: provider.id,
      dek_id: id,
      dek_wrapped: wrapped,
    });
    return { box: new DataKeyRing(new Map([[id, dek]]), id), source: kek.source };
  }
  if (recorded.fingerprint !== provider.id || meta.dek_id === undefined || meta.dek_wrapped === undefined)
    throw mismatch();
  let dek: Buffer;
  try {
    dek = await provider.unwrap(Buffer.from(meta.dek_wrapped, 'base64'));
  } catch (cause) {
    throw mismatch(cause);
  }
  return { box: new DataKeyRing(new Map([[meta.dek_id, dek]]), meta.dek_id), source: kek.source };
}

async function findKek(options: PgKeyOptions, recorded: KeyRecord | undefined) {
  try {
    return await resolveDataKey(
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
}

function noKey(cause: LatchkeyError): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.KEYRING_UNAVAILABLE,
    'a PostgreSQL store needs its key from LATCHKEY_KEY or the OS keyring, and neither is available ' +
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

function mismatch(cause?: unknown): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.STORE_KEY_MISMATCH,
    'this PostgreSQL store was set up with a different key than the one given.',
    {
      retryable: false,
      next: {
        kind: 'repair-store',
        detail: 'use the key the store was created with (LATCHKEY_KEY on every instance)',
      },
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

type Meta = Partial<Record<'key_source' | 'key_fingerprint' | 'dek_id' | 'dek_wrapped', string>>;

async function readMeta(client: Queryable): Promise<Meta> {
  const { rows } = await client.query<{ name: string; value: string }>(
    `SELECT name, value FROM meta WHERE name IN ('key_source', 'key_fingerprint', 'dek_id', 'dek_wrapped')`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.value])) as Meta;
}

async function writeMeta(client: Queryable, meta: Required<Meta>): Promise<void> {
  for (const [name, value] of Object.entries(meta)) {
    await client.query(
      `INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
      [name, value],
    );
  }
}
