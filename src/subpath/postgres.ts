/**
 * `latchkey/postgres`: the PostgreSQL store, for gateways and fleets of instances sharing
 * credentials. Importing it loads pg; the main entry's `openPostgresStore` is the same
 * function, loaded lazily.
 */

/** Open (creating or upgrading its schema if needed) a PostgreSQL store from its URL. */
export { openPostgresStore, DEFAULT_POOL_MAX } from '../store/postgres.js';
/** Options of `openPostgresStore`: URL, pool size, timeouts, key source, event pruning. */
export type { PgKeyStorage, PostgresStoreOptions } from '../store/postgres.js';
