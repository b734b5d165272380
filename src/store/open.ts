import { join, resolve } from 'node:path';

import type { CredentialStore } from './contract.js';
import { defaultHome } from './paths.js';
import type { PostgresStoreOptions } from './postgres.js';
import type { SqliteStoreOptions } from './sqlite.js';
import { sqlitePathOf, storeUrlKind } from './store-url.js';

export const DEFAULT_DB_FILE_NAME = 'latchkey.db';

/** Options of `openStore`, per kind of store; the URL picks which one applies. */
export interface OpenStoreOptions {
  /** Environment for LATCHKEY_STORE, LATCHKEY_HOME and LATCHKEY_KEY. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Used when the URL names a SQLite store (or there is none): home, key storage, timeouts. */
  sqlite?: Omit<SqliteStoreOptions, 'path' | 'env'>;
  /** Used when the URL is `postgres://…`: pool size, timeouts, event pruning. */
  postgres?: Omit<PostgresStoreOptions, 'url' | 'env'>;
}

/** Which store a URL names, before anything is opened. */
export type StoreTarget =
  { kind: 'sqlite'; path: string; home: string; explicit: boolean } | { kind: 'postgres'; url: string };

/**
 * Resolve the store URL: `url`, else `LATCHKEY_STORE`, else the embedded SQLite file in the
 * latchkey home. A SQLite path is made absolute; its data key still lives with the home
 * (keyring entry or key file), so pointing at a file never loosens a directory's mode.
 */
export function storeTarget(url: string | undefined, options: OpenStoreOptions = {}): StoreTarget {
  const env = options.env ?? process.env;
  const given = url !== undefined && url !== '' ? url : env['LATCHKEY_STORE'];
  const home = options.sqlite?.home ?? defaultHome(env);
  if (given === undefined || given === '') {
    return { kind: 'sqlite', path: join(home, DEFAULT_DB_FILE_NAME), home, explicit: false };
  }
  if (storeUrlKind(given) === 'postgres') return { kind: 'postgres', url: given };
  return { kind: 'sqlite', path: resolve(sqlitePathOf(given)), home, explicit: true };
}

/**
 * Open the store a URL names: a SQLite path (or `sqlite:` URL), or `postgres://…` /
 * `postgresql://…`. Without a URL, `LATCHKEY_STORE`, else the embedded SQLite store in the
 * latchkey home. Every CLI command and the proxy open their store through this. Each driver
 * (better-sqlite3, pg) is loaded at the first call that needs it.
 */
export async function openStore(url?: string, options: OpenStoreOptions = {}): Promise<CredentialStore> {
  const env = options.env ?? process.env;
  const target = storeTarget(url, options);
  if (target.kind === 'postgres') {
    const { openPostgresStore } = await import('./postgres.js');
    return openPostgresStore({ ...options.postgres, url: target.url, env });
  }
  const { openSqliteStore } = await import('./sqlite.js');
  return openSqliteStore({ ...options.sqlite, home: target.home, path: target.path, env });
}
