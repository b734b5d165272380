import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import type { CredentialStore, StoreSecurity } from './contract.js';
import { assertNotTruncated, corruptDatabase, isCorruptionError } from './corruption.js';
import type { KeyStorage } from './data-key.js';
import type { KeyProvider } from './envelope.js';
import { type HeldKek, heldStoreKeys, type KeyTable, withStoreKeys } from './key-table.js';
import { defaultHome, ensurePrivateDir, makePrivate, PRIVATE_FILE_MODE } from './paths.js';
import { SqliteConnection } from './sqlite-connection.js';
import { sqliteCredentialTable } from './sqlite-credentials.js';
import { backfillDueIndex, sqliteDueIndex } from './sqlite-due.js';
import { pruneEvents, sqliteEventLog } from './sqlite-events.js';
import { sqliteLeaseTable } from './sqlite-leases.js';
import { hasLegacyValues, sqliteKeyTable } from './sqlite-key-table.js';
import { type KeySetup, keyTracking, setUpKeys } from './sqlite-keys.js';
import { sqliteDiscoveryCache, sqliteRegistrationCache } from './sqlite-registrations.js';
import { sqliteDPoPKeys } from './dpop-keys.js';
import { sqlitePendingRevocations } from './sqlite-revocations.js';
import { migrate } from './sqlite-schema.js';
import { sqliteServeTables } from './sqlite-serve.js';

export { DEFAULT_WATCH_POLL_MS } from './sqlite-events.js';

export interface SqliteStoreOptions {
  /** State directory. Default: `LATCHKEY_HOME`, else the platform config directory. */
  home?: string;
  /** Database file. Default: `<home>/latchkey.db`. */
  path?: string;
  /**
   * Where the key-encryption key lives. Default `auto` (keyring, else a warned-about key
   * file). Ignored when `keyProvider` is given or LATCHKEY_KEY is set.
   */
  keyStorage?: KeyStorage;
  /**
   * A key-encryption key of your own (a KMS, an HSM): it wraps the store's data keys instead
   * of LATCHKEY_KEY, the keyring or the key file. Default: none (the local key above).
   */
  keyProvider?: KeyProvider;
  /** Deadline for each OS keyring call. Default 3000 ms. */
  keyringTimeoutMs?: number;
  /** How long to wait for another process's write lock. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** Environment to read LATCHKEY_HOME / LATCHKEY_KEY from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Events beyond this many newest are pruned on open. Default 10000. */
  keepEvents?: number;
  /**
   * SQLite's page cache for this connection, in KiB. Default 2048 (SQLite's own default;
   * better-sqlite3 raises it to 16 MB). The cache is native memory, resident for as long
   * as the store is open, and a lookup by key touches a handful of pages, so a larger one
   * buys little (issue 16).
   */
  cacheSizeKiB?: number;
}

/** See `SqliteStoreOptions.cacheSizeKiB`. */
export const DEFAULT_SQLITE_CACHE_KIB = 2048;

/**
 * Open (creating if needed) the embedded store: one SQLite file in WAL mode, shared safely
 * by every latchkey process of the user. Secrets are sealed with a data key kept in the OS
 * keyring; see data-key.ts.
 */
export async function openSqliteStore(options: SqliteStoreOptions = {}): Promise<CredentialStore> {
  const env = options.env ?? process.env;
  const home = options.home ?? defaultHome(env);
  const path = options.path ?? join(home, 'latchkey.db');
  ensurePrivateDir(home);
  await assertNotTruncated(path, home);
  const db = openDatabase(
    path,
    options.busyTimeoutMs ?? 5000,
    options.cacheSizeKiB ?? DEFAULT_SQLITE_CACHE_KIB,
  );
  try {
    migrate(db);
    const keys = await setUpKeys(db, {
      home,
      env,
      keyStorage: options.keyStorage ?? 'auto',
      ...(options.keyringTimeoutMs === undefined ? {} : { keyringTimeoutMs: options.keyringTimeoutMs }),
      ...(options.keyProvider === undefined ? {} : { keyProvider: options.keyProvider }),
    });
    pruneEvents(db, options.keepEvents ?? 10_000);
    const security: StoreSecurity = {
      keySource: keys.source,
      insecure: keys.warning !== undefined,
      ...(keys.warning === undefined ? {} : { warning: keys.warning }),
      location: path,
    };
    return await envelopeStore(new SqliteConnection(db, keys.ring, path), keys, security);
  } catch (error) {
    db.close();
    throw storeError(error, path);
  }
}

function openDatabase(path: string, busyTimeoutMs: number, cacheSizeKiB: number): Database.Database {
  // Create the file 0600 before SQLite does: SQLite gives its -wal and -shm files the mode of
  // the database file, so this one step keeps all three private regardless of umask.
  try {
    closeSync(openSync(path, 'a', PRIVATE_FILE_MODE));
    makePrivate(path);
    const db = new Database(path, { timeout: busyTimeoutMs });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL'); // durable in WAL mode across process crashes (kill -9)
    db.pragma('foreign_keys = ON');
    // A negative cache_size is in KiB rather than pages.
    db.pragma(`cache_size = ${-Math.max(1, Math.floor(cacheSizeKiB))}`);
    makePrivate(`${path}-wal`);
    makePrivate(`${path}-shm`);
    return db;
  } catch (error) {
    throw storeError(error, path);
  }
}

function storeError(error: unknown, path: string): unknown {
  if (isLatchkeyError(error)) return error;
  if (isCorruptionError(error)) return corruptDatabase(path, 'SQLite cannot read it as a database', error);
  return new LatchkeyError(ErrorCode.STORE_UNAVAILABLE, `cannot open the credential store ${path}.`, {
    retryable: false,
    next: {
      kind: 'configure',
      detail:
        'check that the file is readable and writable by you, or set LATCHKEY_HOME to another directory',
    },
    cause: error,
  });
}

/**
 * Wire key rotation into the store: the connection follows other processes' rotations, and
 * rekeyStore() finds the key table. A store written before envelope encryption is migrated
 * here, a batch per transaction, so it never holds the write lock for long.
 */
async function envelopeStore(
  conn: SqliteConnection,
  keys: KeySetup,
  security: StoreSecurity,
): Promise<CredentialStore> {
  const held: HeldKek = { provider: keys.provider, source: keys.source };
  const tracking = keyTracking(conn.db, keys.ring, () => held.provider);
  conn.keys = tracking;
  const table = sqliteKeyTable(conn, () => keys.ring);
  if (hasLegacyValues(conn.db)) await migrateLegacy(table);
  // Through the connection, so a row sealed by a data key another process just made is
  // read after a reload instead of being skipped as unreadable.
  await conn.run(() => backfillDueIndex(conn));
  return withStoreKeys(
    composeStore(conn, security),
    heldStoreKeys(table, held, () => tracking.reload()),
  );
}

/** Values re-sealed per transaction when a pre-envelope store is opened. */
const LEGACY_BATCH = 200;

/**
 * Re-seal version-1 values. A failure (a damaged value, a lock held too long) does not fail
 * the open: version-1 values stay readable with the old key, a damaged one reports itself
 * when it is read, as before, and the next open (or a rekey) tries again.
 */
async function migrateLegacy(table: KeyTable): Promise<void> {
  try {
    while ((await table.reseal(LEGACY_BATCH)) > 0);
  } catch {
    // see above: nothing is lost by leaving the rest for later
  }
}

/**
 * One store object out of the seven parts, all on one connection so that a change and its
 * event always share a transaction.
 */
function composeStore(conn: SqliteConnection, security: StoreSecurity): CredentialStore {
  return {
    kind: 'sqlite',
    security,
    ...sqliteCredentialTable(conn),
    ...sqliteRegistrationCache(conn),
    ...sqliteDiscoveryCache(conn),
    ...sqliteLeaseTable(conn),
    ...sqliteDueIndex(conn),
    ...sqliteEventLog(conn),
    ...sqlitePendingRevocations(conn),
    ...sqliteServeTables(conn),
    ...sqliteDPoPKeys(conn),
    close: () => conn.close(),
  };
}
