import pg from 'pg';

import { ErrorCode, LatchkeyError } from '../errors.js';
import type { CredentialStore, StoreSecurity } from './contract.js';
import { PgConnection, storeFailure } from './postgres-connection.js';
import { pgCredentialTable } from './postgres-credentials.js';
import { pgDueIndex } from './postgres-due.js';
import { pgEventLog, pruneEvents } from './postgres-events.js';
import type { KeyProvider } from './envelope.js';
import { type HeldKek, heldStoreKeys, withStoreKeys } from './key-table.js';
import { type PgKeys, type PgKeyStorage, pgKeyTracking, setUpPgKey } from './postgres-key.js';
import { pgKeyTable } from './postgres-key-table.js';
import { pgLeaseTable } from './postgres-leases.js';
import { PgEventFeed } from './postgres-listen.js';
import { pgDiscoveryCache, pgRegistrationCache } from './postgres-registrations.js';
import { pgDPoPKeys } from './postgres-dpop-keys.js';
import { pgPendingRevocations } from './postgres-revocations.js';
import { pgServeTables } from './postgres-serve.js';
import { migrate } from './postgres-schema.js';
import { redactStoreUrl } from './store-url.js';

export type { PgKeyStorage } from './postgres-key.js';

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database?…` (libpq-style parameters accepted by pg). */
  url: string;
  /**
   * Where the data key comes from when `LATCHKEY_KEY` is unset: `auto` and `keyring` both
   * mean the OS keyring (no key file for a shared database). Default `auto`.
   */
  keyStorage?: PgKeyStorage;
  /**
   * A key-encryption key of your own (a KMS, an HSM): it wraps the store's data keys instead
   * of LATCHKEY_KEY or the keyring. Every instance of the store needs it. Default: none.
   */
  keyProvider?: KeyProvider;
  /** Deadline for each OS keyring call. Default 3000 ms. */
  keyringTimeoutMs?: number;
  /** Environment to read LATCHKEY_KEY from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Most pooled connections per store (the LISTEN connection is one more). Default 4. */
  poolMax?: number;
  /** Server-side limit on each statement, in ms. Default 5000. */
  statementTimeoutMs?: number;
  /** How long to wait for a connection (new or from the pool), in ms. Default 5000. */
  connectTimeoutMs?: number;
  /** Events beyond this many newest are pruned, on open and every `pruneIntervalMs`. Default 10000. */
  keepEvents?: number;
  /** How often an open store prunes the event log, in ms. Default 600000 (10 min). */
  pruneIntervalMs?: number;
  /** A re-read of the event log while anyone watches, should a notice be lost. Default 5000 ms. */
  watchSafetyPollMs?: number;
}

export const DEFAULT_POOL_MAX = 4;

/**
 * Open a PostgreSQL store, for gateways and fleets of instances sharing credentials. Creates
 * or upgrades the schema (safely when many instances start at once), checks the data key,
 * prunes the event log, and opens the LISTEN connection that carries change notices.
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<CredentialStore> {
  const location = redactStoreUrl(options.url);
  const config = clientConfig(options);
  const pool = new pg.Pool({
    ...config,
    max: options.poolMax ?? DEFAULT_POOL_MAX,
    idleTimeoutMillis: 10_000,
  });
  // An idle connection that dies is the pool's business: it drops it and opens another.
  pool.on('error', () => undefined);
  let conn: PgConnection | undefined;
  try {
    const key = await setUp(pool, options, location);
    conn = new PgConnection(pool, key.ring, location);
    const feed = new PgEventFeed(conn, {
      connect: () => listenClient(config),
      safetyPollMs: options.watchSafetyPollMs ?? 5000,
      maxReconnectDelayMs: 5000,
    });
    // Registered first: a failure after LISTEN began must not leave that connection open.
    conn.onClose(() => feed.stop());
    await feed.start();
    schedulePruning(conn, options);
    const security: StoreSecurity = { keySource: key.source, insecure: false, location };
    return envelopeStore(conn, composeStore(conn, feed, security), key);
  } catch (error) {
    await (conn?.close() ?? pool.end()).catch(() => undefined);
    throw storeFailure(error, location);
  }
}

function clientConfig(options: PostgresStoreOptions): pg.ClientConfig {
  return {
    connectionString: options.url,
    statement_timeout: options.statementTimeoutMs ?? 5000,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    keepAlive: true,
    application_name: 'latchkey',
    // BIGINT columns hold epoch milliseconds and ids, all well inside 2^53: read them as numbers.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === pg.types.builtins.INT8
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
    },
  };
}

async function listenClient(config: pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client({ ...config, application_name: 'latchkey-listen', statement_timeout: 0 });
  client.on('error', () => undefined); // the feed replaces its own listener on connect
  await client.connect();
  return client;
}

async function setUp(pool: pg.Pool, options: PostgresStoreOptions, location: string) {
  const client = await pool.connect();
  client.on('error', () => undefined); // a lost connection fails the query below instead
  try {
    await client.query('BEGIN');
    await migrate(client);
    const key = await setUpPgKey(client, {
      env: options.env ?? process.env,
      keyStorage: options.keyStorage ?? 'auto',
      identity: location,
      ...(options.keyProvider === undefined ? {} : { keyProvider: options.keyProvider }),
      ...(options.keyringTimeoutMs === undefined ? {} : { keyringTimeoutMs: options.keyringTimeoutMs }),
    });
    await client.query('COMMIT');
    await pruneEvents(client, keepOf(options));
    return key;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

function keepOf(options: PostgresStoreOptions): number {
  const keep = options.keepEvents ?? 10_000;
  if (!Number.isSafeInteger(keep) || keep < 0) {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'keepEvents must be a whole number of events.', {
      retryable: false,
      next: { kind: 'configure', option: 'keepEvents' },
    });
  }
  return keep;
}

/** A long-running instance keeps the log bounded too, not only at open. */
function schedulePruning(conn: PgConnection, options: PostgresStoreOptions): void {
  const timer = setInterval(() => {
    pruneEvents(conn.pool, keepOf(options)).catch(() => undefined);
  }, options.pruneIntervalMs ?? 600_000);
  timer.unref();
  conn.onClose(() => {
    clearInterval(timer);
    return Promise.resolve();
  });
}

/**
 * Wire key rotation into the store: the connection follows other instances' rotations (each
 * write transaction checks the active data key), and rekeyStore() finds the key table.
 */
function envelopeStore(conn: PgConnection, store: CredentialStore, keys: PgKeys): CredentialStore {
  const held: HeldKek = { provider: keys.provider, source: keys.source };
  const tracking = pgKeyTracking(conn.pool, keys.ring, () => held.provider);
  conn.keys = tracking;
  return withStoreKeys(
    store,
    heldStoreKeys(
      pgKeyTable(conn, () => keys.ring),
      held,
      () => tracking.reload(),
    ),
  );
}

function composeStore(conn: PgConnection, feed: PgEventFeed, security: StoreSecurity): CredentialStore {
  return {
    kind: 'postgres',
    security,
    ...pgCredentialTable(conn, feed),
    ...pgRegistrationCache(conn),
    ...pgDiscoveryCache(conn),
    ...pgLeaseTable(conn),
    ...pgDueIndex(conn),
    ...pgEventLog(conn, feed),
    ...pgPendingRevocations(conn, feed),
    ...pgServeTables(conn),
    ...pgDPoPKeys(conn),
    close: () => conn.close(),
  };
}
