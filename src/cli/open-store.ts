import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { createMemoryStore } from '../store/memory.js';
import type { CredentialStore, StoreSecurity } from '../store/contract.js';
import { openStore, storeTarget } from '../store/open.js';
import { PRIVATE_FILE_MODE } from '../store/paths.js';
import type { CliIO } from './io.js';

/**
 * How a command uses the store. `read` commands (status, events, token, tools, call, logout,
 * reconnect, doctor) never create it: asking what is stored must not leave a directory, a
 * database and a data key (perhaps a keyring entry) behind. `write` commands (login, and
 * watchers that must see a store created later) create it on first use.
 */
export type StoreAccess = 'read' | 'write';

/** Marker beside the database: the insecure-key warning was shown for this store. */
export const WARNED_FILE_NAME = 'insecure-key-warned';

export interface CliStore {
  store: CredentialStore;
  /** Set when the store does not exist yet: where the first login will create it. */
  missing?: string;
}

/**
 * The store of `--store` / `LATCHKEY_STORE` (main.ts puts the flag into `io.env`), else the
 * SQLite file in the latchkey home. A Postgres store is a server's: it is always opened.
 */
export async function openCliStore(io: CliIO, access: StoreAccess): Promise<CliStore> {
  const target = storeTarget(undefined, { env: io.env });
  if (target.kind === 'sqlite' && access === 'read' && !existsSync(target.path)) {
    // An empty stand-in: every read answers "nothing stored", which is the truth.
    return { store: createMemoryStore(), missing: target.path };
  }
  // openStore loads the driver: a command that finds no store never loads SQLite (or pg).
  const store = await openStore(undefined, { env: io.env });
  warnOnce(io, store.security);
  return { store };
}

/** Open the store for one command, and close it after. */
export async function withStore(
  io: CliIO,
  run: (store: CredentialStore, missing: string | undefined) => Promise<void>,
  access: StoreAccess = 'read',
): Promise<void> {
  const { store, missing } = await openCliStore(io, access);
  try {
    await run(store, missing);
  } finally {
    await store.close();
  }
}

/**
 * The key-in-a-file warning, once per store: said on every command it became noise that
 * people learn to skip. The first command to see it records that in a 0600 marker file
 * (created exclusively, so two commands starting together print it once); `latchkey doctor`
 * keeps reporting it in full, and `latchkey reset` removes the marker with the store.
 */
function warnOnce(io: CliIO, security: StoreSecurity): void {
  if (security.warning === undefined) return;
  try {
    writeFileSync(join(dirname(security.location), WARNED_FILE_NAME), `${new Date().toISOString()}\n`, {
      mode: PRIVATE_FILE_MODE,
      flag: 'wx',
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return;
    // Cannot record it: better said again next time than never.
  }
  io.err(
    `latchkey: warning: ${security.warning}\n` +
      'latchkey: (shown once for this store; `latchkey doctor <server>` repeats it)\n',
  );
}
