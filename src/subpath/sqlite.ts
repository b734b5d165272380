/**
 * `latchkey/sqlite`: the SQLite store the CLI and the proxy share. Importing it loads
 * better-sqlite3; the main entry's `openSqliteStore` is the same function, loaded lazily.
 */

/** Open (creating if needed) the store: one SQLite file in WAL mode, safe across processes. */
export { openSqliteStore } from '../store/sqlite.js';
/** Options of `openSqliteStore`: home, path, key source, environment. */
export type { SqliteStoreOptions } from '../store/sqlite.js';
/** How often a store watch polls for other processes' writes, in ms. */
export { DEFAULT_WATCH_POLL_MS } from '../store/sqlite.js';
/** Where the key-encryption key comes from: the OS keyring, LATCHKEY_KEY, a key file, or a KeyProvider. */
export type { KeySource, KeyStorage } from '../store/data-key.js';
/** A key-encryption key of your own (a KMS): wraps the store's data keys. */
export type { KeyProvider } from '../store/envelope.js';
/** Rotate a store's data key (and optionally its key-encryption key) while it is in use. */
export { rekeyStore } from '../store/rekey.js';
/** Whether a rotation is unfinished: more than one data key or key-encryption key in use. */
export { keyRotationStatus } from '../store/rekey.js';
/** Options and results of `rekeyStore` and `keyRotationStatus`. */
export type { KeyRotationStatus, RekeyOptions, RekeyProgress, RekeyResult } from '../store/rekey.js';
