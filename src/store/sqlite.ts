import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import type { CredentialStore, StoreSecurity } from './contract.js';
import { assertNotTruncated, corruptDatabase, isCorruptionError } from './corruption.js';
import { createSecretBox } from './crypto.js';
import {
  type KeyRecord,
  type KeySource,
  type KeyStorage,
  resolveDataKey,
  type ResolvedKey,
} from './data-key.js';
import { defaultHome, ensurePrivateDir, makePrivate, PRIVATE_FILE_MODE } from './paths.js';
import { SqliteConnection } from './sqlite-connection.js';
import { sqliteCredentialTable } from './sqlite-credentials.js';
import { backfillDueIndex, sqliteDueIndex } from './sqlite-due.js';
import { pruneEvents, sqliteEventLog } from './sqlite-events.js';
import { sqliteLeaseTable } from './sqlite-leases.js';
import { sqliteDiscoveryCache, sqliteRegistrationCache } from './sqlite-registrations.js';
import { sqlitePendingRevocations } from './sqlite-revocations.js';
import { migrate } from './sqlite-schema.js';

export { DEFAULT_WATCH_POLL_MS } from './sqlite-events.js';

export interface SqliteStoreOptions {
  /** State directory. Default: `LATCHKEY_HOME`, else the platform config directory. */
  home?: string;
  /** Database file. Default: `<home>/latchkey.db`. */
  path?: string;
  /** Where the data key lives. Default `auto` (keyring, else a warned-about key file). */
  keyStorage?: KeyStorage;
  /** Deadline for each OS keyring call. Default 3000 ms. */
  keyringTimeoutMs?: number;
  /** How long to wait for another process's write lock. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** Environment to read LATCHKEY_HOME / LATCHKEY_KEY from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Events beyond this many newest are pruned on open. Default 10000. */
  keepEvents?: number;
}

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
  const db = openDatabase(path, options.busyTimeoutMs ?? 5000);
  try {
    migrate(db);
    const key = await setUpKey(db, {
      home,
      env,
      keyStorage: options.keyStorage ?? 'auto',
      ...(options.keyringTimeoutMs === undefined ? {} : { keyringTimeoutMs: options.keyringTimeoutMs }),
    });
    pruneEvents(db, options.keepEvents ?? 10_000);
    const security: StoreSecurity = {
      keySource: key.source,
      insecure: key.warning !== undefined,
      ...(key.warning === undefined ? {} : { warning: key.warning }),
      location: path,
    };
    const conn = new SqliteConnection(db, createSecretBox(key.key), path);
    backfillDueIndex(conn);
    return composeStore(conn, security);
  } catch (error) {
    db.close();
    throw storeError(error, path);
  }
}

function openDatabase(path: string, busyTimeoutMs: number): Database.Database {
  // Create the file 0600 before SQLite does: SQLite gives its -wal and -shm files the mode of
  // the database file, so this one step keeps all three private regardless of umask.
  try {
    closeSync(openSync(path, 'a', PRIVATE_FILE_MODE));
    makePrivate(path);
    const db = new Database(path, { timeout: busyTimeoutMs });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL'); // durable in WAL mode across process crashes (kill -9)
    db.pragma('foreign_keys = ON');
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

async function setUpKey(
  db: Database.Database,
  options: { home: string; env: NodeJS.ProcessEnv; keyStorage: KeyStorage; keyringTimeoutMs?: number },
): Promise<ResolvedKey> {
  const hasSecrets = (): boolean =>
    db
      .prepare(
        `SELECT EXISTS (SELECT 1 FROM credentials) OR EXISTS (SELECT 1 FROM pending_revocations)
           OR EXISTS (SELECT 1 FROM registrations WHERE client_secret IS NOT NULL) AS yes`,
      )
      .pluck()
      .get() === 1;
  const recorded = readKeyRecord(db);
  if (recorded !== undefined) {
    const found = await resolveDataKey(options, recorded, hasSecrets);
    if (found.source === recorded.source && createSecretBox(found.key).fingerprint === recorded.fingerprint)
      return found;
  }
  // First use (or a key change on an empty store): decide under the write lock, so two
  // processes starting together cannot each create and record a different key.
  db.exec('BEGIN IMMEDIATE');
  try {
    const found = await resolveDataKey(options, readKeyRecord(db), hasSecrets);
    writeKeyRecord(db, { source: found.source, fingerprint: createSecretBox(found.key).fingerprint });
    db.exec('COMMIT');
    return found;
  } catch (error) {
    db.exec('ROLLBACK');
    throw error;
  }
}

function readKeyRecord(db: Database.Database): KeyRecord | undefined {
  const rows = db
    .prepare(`SELECT name, value FROM meta WHERE name IN ('key_source', 'key_fingerprint')`)
    .all() as {
    name: string;
    value: string;
  }[];
  const source = rows.find((r) => r.name === 'key_source')?.value as KeySource | undefined;
  const fingerprint = rows.find((r) => r.name === 'key_fingerprint')?.value;
  return source === undefined || fingerprint === undefined ? undefined : { source, fingerprint };
}

function writeKeyRecord(db: Database.Database, record: KeyRecord): void {
  const put = db.prepare(
    `INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
  );
  put.run('key_source', record.source);
  put.run('key_fingerprint', record.fingerprint);
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
    close: () => conn.close(),
  };
}
