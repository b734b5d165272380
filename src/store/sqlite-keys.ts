import type Database from 'better-sqlite3';

import { ErrorCode, LatchkeyError } from '../errors.js';
import { newDataKey } from './crypto.js';
import { type KeySource, type KeyStorage, resolveDataKey } from './data-key.js';
import { DataKeyRing, type KeyProvider, localKeyProvider, newKeyId } from './envelope.js';
import { type KeyTableState, unwrapKeys, type WrappedKey } from './key-table.js';
import type { KeyTracking } from './sqlite-connection.js';
import { insertKeys, readKeyRecord, readKeyTable, writeKeyRecord } from './sqlite-key-table.js';

export interface KeySetupOptions {
  home: string;
  env: NodeJS.ProcessEnv;
  keyStorage: KeyStorage;
  keyringTimeoutMs?: number;
  keyProvider?: KeyProvider;
}

/** The KEK this process holds, and the DEKs it unwrapped when the store opened. */
export interface KeySetup {
  provider: KeyProvider;
  source: KeySource;
  warning?: string;
  ring: DataKeyRing;
}

interface Kek {
  provider: KeyProvider;
  source: KeySource;
  warning?: string;
  /** A local KEK's bytes: the single key of a pre-envelope store, to read its version-1 values. */
  legacy?: Buffer;
}

/**
 * Find the KEK and load the DEKs. A new store, or one written before envelope encryption,
 * gets its first DEK here, decided under the write lock so two processes opening it at once
 * cannot each make one.
 */
export async function setUpKeys(db: Database.Database, options: KeySetupOptions): Promise<KeySetup> {
  let kek = readKeyRecord(db) === undefined ? undefined : await findKek(db, options);
  let state = readKeyTable(db);
  if (kek === undefined || !usable(state, kek)) {
    // First use, or a KEK change on an empty store: the KEK is found (perhaps created, in the
    // keyring) under the write lock too, so two processes starting together agree on one.
    db.exec('BEGIN IMMEDIATE');
    try {
      kek = await findKek(db, options);
      state = await firstKey(db, kek);
      db.exec('COMMIT');
    } catch (error) {
      db.exec('ROLLBACK');
      throw error;
    }
  }
  const ring = new DataKeyRing(await unwrapAll(kek.provider, state), state.active as string, kek.legacy);
  return {
    provider: kek.provider,
    source: kek.source,
    ...(kek.warning === undefined ? {} : { warning: kek.warning }),
    ring,
  };
}

async function findKek(db: Database.Database, options: KeySetupOptions): Promise<Kek> {
  if (options.keyProvider !== undefined) return { provider: options.keyProvider, source: 'provider' };
  const known = new Set(readKeyTable(db).keys.map((k) => k.kekId));
  const found = await resolveDataKey(
    options,
    readKeyRecord(db),
    () => hasSecrets(db),
    (id) => known.has(id),
  );
  return {
    provider: localKeyProvider(found.key),
    source: found.source,
    ...(found.warning === undefined ? {} : { warning: found.warning }),
    legacy: found.key,
  };
}

function usable(state: KeyTableState, kek: Kek): boolean {
  return (
    state.active !== undefined && state.keys.some((k) => k.id === state.active && k.kekId === kek.provider.id)
  );
}

/** Under the write lock: make the store's first DEK, or replace keys nothing depends on. */
async function firstKey(db: Database.Database, kek: Kek): Promise<KeyTableState> {
  const state = readKeyTable(db);
  if (usable(state, kek)) {
    if (readKeyRecord(db) === undefined)
      writeKeyRecord(db, { source: kek.source, fingerprint: kek.provider.id });
    return state;
  }
  if (state.active !== undefined && hasSecrets(db)) throw kekMismatch(kek, state);
  // A new store, a pre-envelope store (its values are version 1), or a store with nothing
  // sealed whose KEK changed: DEKs under another KEK protect nothing, so they go.
  db.prepare('DELETE FROM data_keys').run();
  const id = newKeyId();
  const key: WrappedKey = {
    id,
    kekId: kek.provider.id,
    wrapped: await kek.provider.wrap(newDataKey()),
    createdAt: Date.now(),
  };
  insertKeys(db, [key], id);
  writeKeyRecord(db, { source: kek.source, fingerprint: kek.provider.id });
  return readKeyTable(db);
}

async function unwrapAll(provider: KeyProvider, state: KeyTableState): Promise<Map<string, Buffer>> {
  try {
    const keys = await unwrapKeys(provider, state.keys);
    if (state.active !== undefined && keys.has(state.active)) return keys;
  } catch (cause) {
    throw kekMismatch({ provider, source: 'provider' }, state, cause);
  }
  throw kekMismatch({ provider, source: 'provider' }, state);
}

export function hasSecrets(db: Database.Database): boolean {
  return (
    db
      .prepare(
        `SELECT EXISTS (SELECT 1 FROM credentials) OR EXISTS (SELECT 1 FROM pending_revocations)
           OR EXISTS (SELECT 1 FROM registrations WHERE client_secret IS NOT NULL) AS yes`,
      )
      .pluck()
      .get() === 1
  );
}

function kekMismatch(
  kek: Pick<Kek, 'provider' | 'source'>,
  state: KeyTableState,
  cause?: unknown,
): LatchkeyError {
  const under = [...new Set(state.keys.filter((k) => k.id === state.active).map((k) => k.kekId))].join(', ');
  return new LatchkeyError(
    ErrorCode.STORE_KEY_MISMATCH,
    `the store's data key is wrapped by key-encryption key ${under || '(none)'}, and the key this process has (${kek.provider.id}) cannot unwrap it. latchkey deleted nothing.`,
    {
      retryable: false,
      next: {
        kind: 'repair-store',
        detail: 'open the store with the key-encryption key it was created or last rekeyed with',
      },
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

/** The connection's KeyTracking over this ring: the active-id check and a shared reload. */
export function keyTracking(
  db: Database.Database,
  ring: DataKeyRing,
  provider: () => KeyProvider,
): KeyTracking {
  const active = db.prepare(`SELECT value FROM meta WHERE name = 'active_data_key'`).pluck();
  let loading: Promise<void> | undefined;
  const load = async (): Promise<void> => {
    const state = readKeyTable(db);
    const fresh = await unwrapKeys(provider(), state.keys, (id) => ring.has(id));
    if (state.active !== undefined) ring.update(fresh, state.active);
  };
  return {
    checkActive() {
      const id = active.get() as string | undefined;
      if (id === undefined || id === ring.activeId) return;
      ring.update(new Map(), id); // throws UnknownDataKeyError when it is not loaded yet
    },
    reload() {
      loading ??= load().finally(() => (loading = undefined));
      return loading;
    },
    settled(body) {
      ring.settled = true;
      try {
        return body();
      } finally {
        ring.settled = false;
      }
    },
  };
}
