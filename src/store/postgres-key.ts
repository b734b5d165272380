import { newDataKey } from './crypto.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import { type KeyRecord, type KeySource, resolveDataKey } from './data-key.js';
import { DataKeyRing, type KeyProvider, localKeyProvider, newKeyId } from './envelope.js';
import { type KeyTableState, unwrapKeys } from './key-table.js';
import type { PgKeyTracking, Queryable } from './postgres-connection.js';
import { insertKeys, readKeyRecord, readKeyTable, writeKeyRecord } from './postgres-key-table.js';
import { KEY_SETUP_LOCK } from './postgres-schema.js';

/**
 * The keys of a Postgres store. Secrets are sealed exactly as in SQLite (envelope.ts, layout
 * v2) under data keys (DEKs) kept in the `data_keys` table, each wrapped by a key-encryption
 * key (KEK): a caller's KeyProvider (a KMS), or a local key from `LATCHKEY_KEY` or the OS
 * keyring, never a key file: a file beside a shared database protects nothing, and each
 * instance would make its own. A fleet sets `LATCHKEY_KEY` (or the same provider) on every
 * instance; the keyring suits one machine.
 *
 * The first instance (under an advisory lock, so instances starting together agree) records
 * the KEK's fingerprint and the first wrapped DEK. Unlike SQLite, a mismatching KEK is refused
 * even on an empty store: another instance may be writing with the recorded one right now.
 */
export type PgKeyStorage = 'auto' | 'keyring';

export interface PgKeyOptions {
  env: NodeJS.ProcessEnv;
  keyStorage: PgKeyStorage;
  keyringTimeoutMs?: number;
  keyProvider?: KeyProvider;
  /** A stable, password-free name of the database, naming the keyring entry. */
  identity: string;
}

export interface PgKeys {
  ring: DataKeyRing;
  provider: KeyProvider;
  source: KeySource;
}

/** Find (or, for a new store, create and record) the keys; `client` must be inside a transaction. */
export async function setUpPgKey(client: Queryable, options: PgKeyOptions): Promise<PgKeys> {
  await client.query('SELECT pg_advisory_xact_lock($1)', [KEY_SETUP_LOCK.toString()]);
  const recorded = await readKeyRecord(client);
  let state = await readKeyTable(client);
  const kek = await findKek(options, recorded, state);
  if (recorded === undefined) {
    const id = newKeyId();
    const wrapped = await kek.provider.wrap(newDataKey());
    await insertKeys(client, [{ id, kekId: kek.provider.id, wrapped, createdAt: Date.now() }], id);
    await writeKeyRecord(client, { source: kek.source, fingerprint: kek.provider.id });
    state = await readKeyTable(client);
  }
  return { ring: await unwrapAll(kek.provider, state), provider: kek.provider, source: kek.source };
}

async function findKek(
  options: PgKeyOptions,
  recorded: KeyRecord | undefined,
  state: KeyTableState,
): Promise<{ provider: KeyProvider; source: KeySource }> {
  if (options.keyProvider !== undefined) return { provider: options.keyProvider, source: 'provider' };
  // Both KEKs are accepted while a KEK change is under way (the table holds copies under each).
  const known = new Set(state.keys.map((k) => k.kekId));
  try {
    const found = await resolveDataKey(
      {
        // The keyring entry is named after `home`; a database's identity plays that part.
        home: `postgres:${options.identity}`,
        keyStorage: 'keyring',
        env: options.env,
        ...(options.keyringTimeoutMs === undefined ? {} : { keyringTimeoutMs: options.keyringTimeoutMs }),
      },
      recorded,
      () => true,
      (id) => known.has(id),
    );
    return { provider: localKeyProvider(found.key), source: found.source };
  } catch (error) {
    throw isLatchkeyError(error) && error.code === ErrorCode.KEYRING_UNAVAILABLE ? noKey(error) : error;
  }
}

/** Every DEK with a copy under `provider`; the active one must be among them. */
async function unwrapAll(provider: KeyProvider, state: KeyTableState): Promise<DataKeyRing> {
  const active = state.active;
  if (active === undefined || !state.keys.some((k) => k.id === active && k.kekId === provider.id)) {
    throw mismatch();
  }
  try {
    return new DataKeyRing(await unwrapKeys(provider, state.keys), active);
  } catch (cause) {
    throw mismatch(cause);
  }
}

/** The connection's PgKeyTracking over this ring: the active-id check and a shared reload. */
export function pgKeyTracking(
  pool: Queryable,
  ring: DataKeyRing,
  provider: () => KeyProvider,
): PgKeyTracking {
  let loading: Promise<void> | undefined;
  const load = async (): Promise<void> => {
    const state = await readKeyTable(pool);
    const fresh = await unwrapKeys(provider(), state.keys, (id) => ring.has(id));
    if (state.active !== undefined) ring.update(fresh, state.active);
  };
  return {
    observe(activeId) {
      if (activeId === undefined || activeId === ring.activeId) return;
      ring.update(new Map(), activeId); // throws UnknownDataKeyError when it is not loaded yet
    },
    reload() {
      loading ??= load().finally(() => (loading = undefined));
      return loading;
    },
  };
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
    'this PostgreSQL store was set up with a different key-encryption key than the one given; latchkey deleted nothing.',
    {
      retryable: false,
      next: {
        kind: 'repair-store',
        detail:
          'use the key the store was created or last rekeyed with (LATCHKEY_KEY or the key provider, on every instance)',
      },
      ...(cause === undefined ? {} : { cause }),
    },
  );
}
