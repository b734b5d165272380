import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { ErrorCode, LatchkeyError } from '../errors.js';

/** Files holding credentials are private to the user; so is the directory around them. */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Where latchkey keeps its state: `LATCHKEY_HOME` when set, else the platform's config
 * directory (`$XDG_CONFIG_HOME/latchkey` or `~/.config/latchkey` on Linux,
 * `~/Library/Application Support/latchkey` on macOS, `%APPDATA%\latchkey` on Windows).
 */
export function defaultHome(env: NodeJS.ProcessEnv = process.env, platform = process.platform): string {
  const explicit = env['LATCHKEY_HOME'];
  if (explicit !== undefined && explicit !== '') return explicit;
  if (platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'latchkey');
  if (platform === 'win32') return join(env['APPDATA'] ?? join(homedir(), 'AppData', 'Roaming'), 'latchkey');
  const xdg = env['XDG_CONFIG_HOME'];
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.config'), 'latchkey');
}

/**
 * Create `dir` if needed and make sure it is 0700. An existing directory with looser
 * permissions is tightened rather than rejected: it is ours, and the alternative is a user
 * who cannot log in until they run chmod.
 */
export function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    if (process.platform !== 'win32' && (statSync(dir).mode & 0o777) !== PRIVATE_DIR_MODE) {
      chmodSync(dir, PRIVATE_DIR_MODE);
    }
  } catch (cause) {
    throw new LatchkeyError(ErrorCode.STORE_UNAVAILABLE, `cannot create the latchkey directory ${dir}.`, {
      retryable: false,
      next: {
        kind: 'configure',
        detail: 'check the permissions of the directory, or set LATCHKEY_HOME to a writable one',
      },
      cause,
    });
  }
}

/** Tighten a file we own to 0600 (SQLite creates its files with the process umask). */
export function makePrivate(file: string): void {
  if (process.platform === 'win32') return;
  try {
    if ((statSync(file).mode & 0o777) !== PRIVATE_FILE_MODE) chmodSync(file, PRIVATE_FILE_MODE);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
