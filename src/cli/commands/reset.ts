import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { ErrorCode, LatchkeyError } from '../../errors.js';
import { KEY_FILE_NAME, keyringAccount } from '../../store/data-key.js';
import { keyringSlot } from '../../store/keyring.js';
import { storeTarget } from '../../store/open.js';
import { defaultHome } from '../../store/paths.js';
import type { CliIO } from '../io.js';
import { WARNED_FILE_NAME } from '../open-store.js';

export interface ResetOptions {
  /** The user confirmed (`--yes`); without it nothing is deleted. */
  yes: boolean;
}

/**
 * Discard the store: the database, its key file and its keyring entry. This is the way out
 * of a lost or mismatched data key (STORE_KEY_MISMATCH), when stored secrets can no longer
 * be decrypted. Tokens are NOT revoked (they cannot be read any more); `latchkey logout
 * --all` first is the better choice whenever it still works.
 */
export async function reset(io: CliIO, options: ResetOptions): Promise<void> {
  const target = storeTarget(undefined, { env: io.env });
  if (target.kind === 'postgres' || target.explicit) {
    // A store named by URL may be shared (a fleet's database) or the user's own file:
    // discarding it is theirs to do, with the tools that made it.
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      'reset discards only the default store in the latchkey home, not one named by --store or LATCHKEY_STORE.',
      {
        retryable: false,
        next: {
          kind: 'configure',
          detail: 'remove that store yourself (drop the database, or delete the file)',
        },
      },
    );
  }
  const home = io.env['LATCHKEY_HOME'] ?? defaultHome(io.env);
  const files = ['latchkey.db', 'latchkey.db-wal', 'latchkey.db-shm', KEY_FILE_NAME, WARNED_FILE_NAME].map(
    (f) => join(home, f),
  );
  const present = files.filter((f) => existsSync(f));
  if (!options.yes) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      `this deletes every stored credential in ${home} without revoking it (${present.length} file(s) there).`,
      {
        retryable: false,
        next: {
          kind: 'configure',
          detail: 'try `latchkey logout --all` first; to discard anyway, run `latchkey reset --yes`',
        },
      },
    );
  }
  for (const file of present) rmSync(file, { force: true });
  let keyring = 'no keyring entry';
  try {
    if (await (await keyringSlot(keyringAccount(home))).delete()) keyring = 'its keyring entry';
  } catch {
    keyring = 'no reachable keyring';
  }
  io.err(
    `Discarded the store in ${home}: ${present.length} file(s) and ${keyring}. Log in again with \`latchkey login <server>\`.\n`,
  );
}
