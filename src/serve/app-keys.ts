import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import { ErrorCode, LatchkeyError } from '../errors.js';
import type { AppKeyRecord, AppKeyTable } from '../store/serve-contract.js';
import { checkedSubjectPrefix } from './scopes.js';

/**
 * App keys: `lk_<id>_<secret>`. The id (12 hex digits) is public and finds the row; the
 * secret is 256 random bits. The store keeps a SHA-256 digest of the whole key only: with a
 * key this random a slow password hash buys nothing, and a stolen table does not let anyone
 * call the API. The digest is compared in constant time.
 */
const KEY_SHAPE = /^lk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export interface CreatedAppKey {
  record: AppKeyRecord;
  /** The key itself: shown once, never stored. */
  key: string;
}

function digestOf(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export interface AppKeyOptions {
  /**
   * Only subjects starting with this may be named with the key (scopes.ts): 1-64 characters
   * of a subject's alphabet. Default: none, the key speaks for every subject.
   */
  subjectPrefix?: string | undefined;
}

export async function createAppKey(
  store: AppKeyTable,
  name: string,
  options: AppKeyOptions = {},
): Promise<CreatedAppKey> {
  const label = name.trim();
  if (label === '' || label.length > 100 || [...label].some((c) => c < ' ' || c === '\u007f')) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      'an app key needs a name of 1-100 printable characters.',
      {
        retryable: false,
        next: { kind: 'configure', detail: 'name the application the key is for' },
      },
    );
  }
  const prefix =
    options.subjectPrefix === undefined ? undefined : checkedSubjectPrefix(options.subjectPrefix);
  const id = randomBytes(6).toString('hex');
  const key = `lk_${id}_${randomBytes(32).toString('base64url')}`;
  const record: AppKeyRecord = {
    id,
    name: label,
    digest: digestOf(key).toString('hex'),
    createdAt: Date.now(),
    ...(prefix === undefined ? {} : { subjectPrefix: prefix }),
  };
  await store.addAppKey(record);
  return { record, key };
}

/**
 * The app a presented key belongs to, or undefined for a malformed, unknown or wrong key (the
 * three are not told apart to the caller).
 */
export async function verifyAppKey(store: AppKeyTable, presented: string): Promise<AppKeyRecord | undefined> {
  const match = KEY_SHAPE.exec(presented);
  if (match === null) return undefined;
  const record = await store.getAppKey(match[1] as string);
  if (record === undefined) return undefined;
  const stored = Buffer.from(record.digest, 'hex');
  const given = digestOf(presented);
  return stored.length === given.length && timingSafeEqual(stored, given) ? record : undefined;
}

/** The bearer credential of an `Authorization` header, if it has one. */
export function bearerOf(header: string | undefined): string | undefined {
  const match = /^Bearer[ ]+([^\s]+)\s*$/i.exec(header ?? '');
  return match?.[1];
}
