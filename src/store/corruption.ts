import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { ErrorCode, LatchkeyError } from '../errors.js';
import { KEY_FILE_NAME } from './data-key.js';

/**
 * How long a 0-byte database may take to get its first page from a process that is creating
 * it right now: the file exists empty only between its creation and `journal_mode = WAL`,
 * which writes the header. Generous, and paid only when the file is empty and a key exists.
 */
const CREATION_GRACE_MS = 250;

/**
 * A database file that exists but is empty next to a data-key file is a store that lost its
 * contents (truncated by a crash of the file system, a bad copy, a full disk), not a new one:
 * the key file is written only after the database has its schema. Opening it would silently
 * turn every stored login into "not logged in". Nothing is deleted or rewritten.
 */
export async function assertNotTruncated(path: string, home: string): Promise<void> {
  if (!isEmptyFile(path) || !existsSync(join(home, KEY_FILE_NAME))) return;
  await delay(CREATION_GRACE_MS);
  if (isEmptyFile(path)) throw corruptDatabase(path, 'it is empty (0 bytes) but its data-key file exists');
}

/** SQLite's own verdict that a file is not (or no longer) a usable database. */
export function isCorruptionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT';
}

export function corruptDatabase(path: string, reason: string, cause?: unknown): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.STORE_CORRUPT,
    `the credential store ${path} is corrupt: ${reason}. latchkey deleted nothing.`,
    {
      retryable: false,
      next: { kind: 'repair-store', path },
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

function isEmptyFile(path: string): boolean {
  try {
    const stats = statSync(path);
    return stats.isFile() && stats.size === 0;
  } catch {
    return false;
  }
}
