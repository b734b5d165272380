import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import { keyFingerprint, newDataKey, parseDataKey } from './crypto.js';
import { PRIVATE_FILE_MODE } from './paths.js';
import { DEFAULT_KEYRING_TIMEOUT_MS, keyringSlot } from './keyring.js';

/**
 * Where the local key-encryption key (KEK) comes from: the key that wraps the store's data
 * keys (envelope.ts). Before envelope encryption it sealed secrets itself, hence the names
 * (`data-key` file, `data-key:` keyring account), kept so existing stores find it.
 * - `auto` (default): the OS keyring; when there is none, a 0600 key file beside the store,
 *   with a warning the user sees (`latchkey status` shows it too).
 * - `keyring`: the OS keyring or fail. For users who would rather not log in than have a key
 *   on disk.
 * - `insecure-file`: always the key file. Named to be awkward on purpose: the key then sits
 *   next to the data it protects, and only file permissions guard it.
 * `LATCHKEY_KEY` (64 hex chars or base64 of 32 bytes) overrides all three, for headless
 * servers whose key comes from a secret manager.
 */
export type KeyStorage = 'auto' | 'keyring' | 'insecure-file';
/** `provider`: a caller's KeyProvider (a KMS), given to openSqliteStore. */
export type KeySource = 'env' | 'keyring' | 'file' | 'provider';

export interface DataKeyOptions {
  home: string;
  keyStorage: KeyStorage;
  keyringTimeoutMs?: number;
  env: NodeJS.ProcessEnv;
}

/** What the store recorded about its key when the key was first set up. */
export interface KeyRecord {
  source: KeySource;
  fingerprint: string;
}

export interface ResolvedKey {
  key: Buffer;
  source: KeySource;
  /** Set when secrets are protected by file permissions only. */
  warning?: string;
}

export const KEY_FILE_NAME = 'data-key';

export const INSECURE_KEY_WARNING =
  'no OS keyring is available, so the key that encrypts stored tokens is kept in a 0600 file next to them. ' +
  'Anyone who can read your files can use your tokens. Install and unlock a keyring (gnome-keyring, KWallet), ' +
  'or set LATCHKEY_KEY from a secret manager.';

/**
 * Find the key for a store that recorded `recorded` (undefined: a new store), creating one
 * when the store is new. `hasSecrets` says whether anything is encrypted yet: a store with
 * nothing to lose may switch keys silently; one with secrets fails with STORE_KEY_MISMATCH
 * rather than overwrite what the user might still recover with the right key.
 * `isKnownKey` accepts a key other than the recorded one that the store still holds data
 * keys under (the old or the new KEK while a KEK change is under way).
 */
export async function resolveDataKey(
  options: DataKeyOptions,
  recorded: KeyRecord | undefined,
  hasSecrets: () => boolean,
  isKnownKey: (fingerprint: string) => boolean = () => false,
): Promise<ResolvedKey> {
  const accept = (found: ResolvedKey): ResolvedKey => checked(found, recorded, hasSecrets, isKnownKey);
  const fromEnv = envKey(options.env);
  if (fromEnv !== undefined) return accept({ key: fromEnv, source: 'env' });
  if (recorded !== undefined) {
    const found = await findRecordedKey(options, recorded.source);
    if (found !== undefined) return accept(found);
    if (hasSecrets()) throw missingKey(options, recorded.source);
  }
  return createKey(options);
}

function envKey(env: NodeJS.ProcessEnv): Buffer | undefined {
  const text = env['LATCHKEY_KEY'];
  if (text === undefined || text === '') return undefined;
  const key = parseDataKey(text);
  if (key === undefined) {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'LATCHKEY_KEY is not a 32-byte key.', {
      retryable: false,
      next: {
        kind: 'configure',
        detail:
          'set LATCHKEY_KEY to 64 hex characters or base64 of 32 random bytes (openssl rand -base64 32)',
      },
    });
  }
  return key;
}

function checked(
  found: ResolvedKey,
  recorded: KeyRecord | undefined,
  hasSecrets: () => boolean,
  isKnownKey: (fingerprint: string) => boolean,
): ResolvedKey {
  const fingerprint = keyFingerprint(found.key);
  if (
    recorded === undefined ||
    recorded.fingerprint === fingerprint ||
    isKnownKey(fingerprint) ||
    !hasSecrets()
  )
    return found;
  throw new LatchkeyError(
    ErrorCode.STORE_KEY_MISMATCH,
    `the stored credentials were encrypted with a different data key than the one from ${describe(found.source)}.`,
    {
      retryable: false,
      next: { kind: 'repair-store', detail: 'restore the original key (LATCHKEY_KEY or the keyring entry)' },
    },
  );
}

async function findRecordedKey(options: DataKeyOptions, source: KeySource): Promise<ResolvedKey | undefined> {
  if (source === 'keyring') {
    const text = await (await slot(options)).get();
    const key = text === undefined ? undefined : parseDataKey(text);
    return key === undefined ? undefined : { key, source };
  }
  if (source === 'file') {
    const key = readKeyFile(options.home);
    return key === undefined ? undefined : { key, source, warning: INSECURE_KEY_WARNING };
  }
  return undefined; // recorded 'env' but LATCHKEY_KEY is unset now, or 'provider' but none given
}

async function createKey(options: DataKeyOptions): Promise<ResolvedKey> {
  if (options.keyStorage === 'insecure-file') return fileKey(options.home);
  try {
    const keyring = await slot(options);
    // An entry may outlive a deleted store file; reusing it costs nothing.
    const existing = parseDataKey((await keyring.get()) ?? '');
    if (existing !== undefined) return { key: existing, source: 'keyring' };
    const key = newDataKey();
    await keyring.set(key.toString('base64'));
    return { key, source: 'keyring' };
  } catch (error) {
    if (options.keyStorage === 'keyring' || !isLatchkeyError(error)) throw error;
    return fileKey(options.home);
  }
}

function fileKey(home: string): ResolvedKey {
  const path = join(home, KEY_FILE_NAME);
  const key = newDataKey();
  try {
    // `wx`: never overwrite a key some other process just wrote (or one that still guards data).
    writeFileSync(path, key.toString('base64') + '\n', { mode: PRIVATE_FILE_MODE, flag: 'wx' });
    return { key, source: 'file', warning: INSECURE_KEY_WARNING };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const existing = readKeyFile(home);
  // Just seen by `wx`, now gone: someone removed it in between; a missing key, not a corrupt one.
  if (existing === undefined) throw missingKey({ home }, 'file');
  return { key: existing, source: 'file', warning: INSECURE_KEY_WARNING };
}

/**
 * The key file's key; undefined only when there is no file. A file that holds anything but
 * a key is corruption (a disk error, a bad restore, an editor), reported as such and left in
 * place: the key may still be recovered from it, and deleting it would lose the store.
 */
function readKeyFile(home: string): Buffer | undefined {
  const path = join(home, KEY_FILE_NAME);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const key = parseDataKey(text);
  if (key !== undefined) return key;
  throw new LatchkeyError(
    ErrorCode.STORE_CORRUPT,
    `the key file ${path} is corrupt: it does not hold a 32-byte data key. latchkey deleted nothing.`,
    {
      retryable: false,
      next: { kind: 'repair-store', path },
    },
  );
}

function slot(options: DataKeyOptions): ReturnType<typeof keyringSlot> {
  return keyringSlot(keyringAccount(options.home), options.keyringTimeoutMs ?? DEFAULT_KEYRING_TIMEOUT_MS);
}

/** One keyring entry per store directory, so two LATCHKEY_HOMEs never share or clobber a key. */
export function keyringAccount(home: string): string {
  let path = home;
  try {
    path = realpathSync(home);
  } catch {
    // not created yet; the literal path is as good an identity as any
  }
  return `data-key:${createHash('sha256').update(path).digest('hex').slice(0, 16)}`;
}

function missingKey(options: Pick<DataKeyOptions, 'home'>, source: KeySource): LatchkeyError {
  const keyFile = join(options.home, KEY_FILE_NAME);
  const where =
    source === 'env'
      ? 'LATCHKEY_KEY, which is not set'
      : source === 'provider'
        ? 'a key provider (KMS), and none was given'
        : source === 'keyring'
          ? 'the OS keyring, which no longer has it'
          : `the key file ${keyFile}, which is missing`;
  return new LatchkeyError(
    ErrorCode.STORE_KEY_MISMATCH,
    `the data key for the stored credentials was kept in ${where}.`,
    {
      retryable: source === 'keyring',
      next:
        source === 'env'
          ? { kind: 'configure', detail: 'set LATCHKEY_KEY to the key the store was created with' }
          : source === 'provider'
            ? { kind: 'configure', detail: 'open the store with the key provider it was encrypted under' }
            : source === 'keyring'
              ? { kind: 'repair-store', detail: 'unlock or restore the keyring' }
              : { kind: 'repair-store', path: keyFile },
    },
  );
}

function describe(source: KeySource): string {
  if (source === 'provider') return 'the key provider';
  return source === 'env' ? 'LATCHKEY_KEY' : source === 'keyring' ? 'the OS keyring' : 'the key file';
}
