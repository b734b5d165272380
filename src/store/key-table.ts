import { ErrorCode, LatchkeyError } from '../errors.js';
import type { CredentialStore } from './contract.js';
import type { KeyRecord, KeySource } from './data-key.js';
import { type DataKeyRing, type KeyProvider, UnknownDataKeyError } from './envelope.js';

/** One wrapped copy of a DEK: the same DEK has one per KEK that can open it. */
export interface WrappedKey {
  id: string;
  kekId: string;
  wrapped: Buffer;
  createdAt: number;
}

export interface KeyTableState {
  /** The DEK new values are sealed with; undefined only before the store's first key. */
  active: string | undefined;
  keys: WrappedKey[];
}

/**
 * What a store backend provides for envelope encryption and rotation: its table of wrapped
 * DEKs and its sealed columns. Each call that changes something is one transaction. The
 * SQLite store implements it in sqlite-key-table.ts, the Postgres store in
 * postgres-key-table.ts; rekeyStore() works on either unchanged.
 */
export interface KeyTable {
  read(): Promise<KeyTableState>;
  /** Insert wrapped copies (an existing (id, kekId) is kept), then make `active` active when given. */
  add(keys: readonly WrappedKey[], active?: string): Promise<void>;
  /**
   * Re-seal at most `limit` values that the active DEK did not seal (older DEKs, version 1),
   * each only if unchanged since it was read: a concurrent write wins. Returns how many.
   */
  reseal(limit: number): Promise<number>;
  /** How many sealed values each DEK seals; `legacy` counts version-1 values. */
  usage(): Promise<Map<string, number>>;
  /**
   * Drop every DEK other than the active one that seals nothing. With `kekId`, also drop every
   * wrapped copy under another KEK, but only when `kekId` is the KEK the store records and
   * every DEK left has a copy under it. Checked and done in one transaction, so a value
   * written meanwhile cannot lose its key. Returns the ids of the DEKs dropped.
   */
  prune(kekId?: string): Promise<string[]>;
  /** Record which KEK the store is now under, for the next open to look for. */
  recordKek(record: KeyRecord): Promise<void>;
}

/** The key state an envelope-encrypted store carries; rekeyStore() drives it. */
export interface StoreKeys {
  readonly table: KeyTable;
  /** The KEK this process holds. */
  readonly provider: KeyProvider;
  readonly source: KeySource;
  /** Re-read the key table and unwrap DEKs this process has not seen. */
  reload(): Promise<void>;
  /** After a rotation to a new KEK: unwrap later DEKs with it. */
  useProvider(provider: KeyProvider, source: KeySource): void;
}

/** The KEK a store was opened with; a rotation to a new KEK replaces it in place. */
export interface HeldKek {
  provider: KeyProvider;
  source: KeySource;
}

/** StoreKeys over a held KEK, so that what unwraps later DEKs follows useProvider(). */
export function heldStoreKeys(table: KeyTable, held: HeldKek, reload: () => Promise<void>): StoreKeys {
  return {
    table,
    get provider() {
      return held.provider;
    },
    get source() {
      return held.source;
    },
    reload,
    useProvider(provider, source) {
      held.provider = provider;
      held.source = source;
    },
  };
}

const KEYS = Symbol.for('latchkey.store-keys');

/** Attach the key state to a store object (not enumerable: it is not part of the contract). */
export function withStoreKeys<S extends CredentialStore>(store: S, keys: StoreKeys): S {
  Object.defineProperty(store, KEYS, { value: keys, enumerable: false });
  return store;
}

export function storeKeysOf(store: CredentialStore): StoreKeys {
  const keys = (store as unknown as Record<symbol, StoreKeys | undefined>)[KEYS];
  if (keys !== undefined) return keys;
  throw new LatchkeyError(
    ErrorCode.INVALID_INPUT,
    `the ${store.kind} store keeps no encrypted secrets at rest, so it has no key to rotate.`,
    {
      retryable: false,
      next: { kind: 'configure', detail: 'rotate the keys of a SQLite or PostgreSQL store' },
    },
  );
}

/** Unwrap every DEK that has a copy under `provider`, skipping those already in `known`. */
export async function unwrapKeys(
  provider: KeyProvider,
  keys: readonly WrappedKey[],
  known: (id: string) => boolean = () => false,
): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const key of keys) {
    if (key.kekId !== provider.id || known(key.id) || out.has(key.id)) continue;
    out.set(key.id, await provider.unwrap(key.wrapped));
  }
  return out;
}

/**
 * Open a sealed value so a rekey can seal it again. An unknown data key is passed on (the
 * caller reloads the key table and runs once more); any other failure is damage, reported
 * with `where` (the table and the server or issuer, never the value) and nothing deleted.
 */
export function openForReseal(ring: DataKeyRing, sealed: Buffer, aad: string, where: string): string {
  try {
    return ring.open(sealed, aad);
  } catch (cause) {
    if (cause instanceof UnknownDataKeyError) throw cause;
    throw new LatchkeyError(
      ErrorCode.STORE_KEY_MISMATCH,
      `a secret in ${where} does not open, so it cannot be re-encrypted; the old data key is kept and nothing was deleted.`,
      {
        retryable: false,
        next: {
          kind: 'repair-store',
          detail: 'log in to that server again (which replaces the secret), then finish the rotation',
        },
        cause,
      },
    );
  }
}

/** Which row a sealed value belongs to, in words for an error: its table and server or issuer. */
export function sealedRowName(
  table: string,
  row: Record<string, unknown>,
  text: (v: unknown) => string,
): string {
  return table === 'registrations'
    ? `${table} (issuer ${text(row['issuer'])})`
    : `${table} (server ${text(row['server'])})`;
}

/**
 * A value sealed under a data key this process cannot unwrap, as the error a caller sees: the
 * store was rekeyed to a key-encryption key this process does not hold.
 */
export function unknownDataKeyFailure(error: UnknownDataKeyError): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.STORE_KEY_MISMATCH,
    `a stored secret is sealed with data key ${error.keyId}, which the key-encryption key of this process cannot unwrap.`,
    {
      retryable: false,
      next: { kind: 'repair-store', detail: 'use the key-encryption key the store was last rekeyed to' },
      cause: error,
    },
  );
}
