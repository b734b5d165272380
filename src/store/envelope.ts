import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

import { DATA_KEY_BYTES, keyFingerprint, type SecretBox } from './crypto.js';

/**
 * Envelope encryption. Secrets are sealed with AES-256-GCM under a data key (DEK); the DEK
 * is kept in the store, wrapped by a key-encryption key (KEK) that never touches the store.
 * Several DEKs can be readable at once (during a rotation), so every sealed value names the
 * DEK that sealed it.
 *
 * Sealed layout, version 2: 0x02 | DEK id (8) | nonce (12) | tag (16) | ciphertext, with the
 * first 9 bytes prepended to the associated data, so a value cannot be relabelled.
 * Version 1 (latchkey before envelope encryption): 0x01 | nonce | tag | ciphertext under the
 * store's single key, which is now its KEK; read only until the store is migrated.
 */
export const SEALED_V1 = 1;
export const SEALED_V2 = 2;
const KEY_ID_BYTES = 8;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const V2_HEADER_BYTES = 1 + KEY_ID_BYTES;

/**
 * Where the KEK lives. latchkey ships one for a local 32-byte key (LATCHKEY_KEY, the OS
 * keyring, the key file); a KMS or HSM implements this interface and is passed to
 * `openSqliteStore({ keyProvider })`. Both calls may be slow (a network round trip): latchkey
 * calls them only when it opens the store and when it meets a DEK it has not unwrapped yet,
 * never per token.
 */
export interface KeyProvider {
  /**
   * Stable, non-secret name of this KEK (a KMS key ARN and version, a fingerprint). Recorded
   * next to each wrapped DEK, so latchkey knows which wrapped copy this provider can open.
   */
  readonly id: string;
  /** Encrypt (and authenticate) a 32-byte DEK. */
  wrap(dataKey: Buffer): Promise<Buffer>;
  /** The DEK back; must throw when `wrapped` was not made by this KEK or was altered. */
  unwrap(wrapped: Buffer): Promise<Buffer>;
}

const WRAP_INFO = 'latchkey key-encryption v2';
const WRAP_AAD = Buffer.from('latchkey wrapped data key v2', 'utf8');

/**
 * The provider for a local 32-byte KEK. The wrapping key is derived with HKDF, so the same
 * bytes that sealed version-1 values directly are never used directly for wrapping too.
 */
export function localKeyProvider(kek: Buffer): KeyProvider {
  if (kek.length !== DATA_KEY_BYTES) throw new Error(`key-encryption key must be ${DATA_KEY_BYTES} bytes`);
  const wrapKey = Buffer.from(hkdfSync('sha256', kek, Buffer.alloc(0), WRAP_INFO, DATA_KEY_BYTES));
  return {
    id: keyFingerprint(kek),
    wrap: (dataKey) => Promise.resolve(gcmSeal(wrapKey, dataKey, WRAP_AAD)),
    unwrap: (wrapped) => Promise.resolve(gcmOpen(wrapKey, wrapped, WRAP_AAD)),
  };
}

export function newKeyId(): string {
  return randomBytes(KEY_ID_BYTES).toString('hex');
}

/** Thrown (internally) when a value names a DEK this process has not unwrapped yet. */
export class UnknownDataKeyError extends Error {
  constructor(readonly keyId: string) {
    super(`sealed with data key ${keyId}, which this process has not loaded`);
  }
}

/** Which key sealed a value: a DEK id, `legacy` (version 1), or undefined when unreadable. */
export function sealedBy(sealed: Buffer): string | undefined {
  if (sealed[0] === SEALED_V1) return 'legacy';
  if (sealed[0] === SEALED_V2 && sealed.length >= V2_HEADER_BYTES) {
    return sealed.subarray(1, V2_HEADER_BYTES).toString('hex');
  }
  return undefined;
}

/** The 9 leading bytes of every value sealed by `keyId`: how a store finds the others. */
export function sealedPrefix(keyId: string): Buffer {
  return Buffer.concat([Buffer.of(SEALED_V2), Buffer.from(keyId, 'hex')]);
}

/**
 * The DEKs this process has unwrapped. Seals with the active one; opens with whichever one a
 * value names. A value naming an unknown DEK throws UnknownDataKeyError, which the store
 * answers by re-reading its key table (another process rotated) and trying once more.
 */
export class DataKeyRing implements SecretBox {
  #keys = new Map<string, Buffer>();
  #active: string;
  readonly #legacy: Buffer | undefined;
  /**
   * Set while an operation runs again after a reload: a DEK still unknown then is not a
   * rotation in progress but a damaged or foreign value, reported like any that fails to open.
   */
  settled = false;

  constructor(keys: ReadonlyMap<string, Buffer>, active: string, legacy?: Buffer) {
    if (!keys.has(active)) throw new Error('the active data key is not loaded');
    this.#keys = new Map(keys);
    this.#active = active;
    this.#legacy = legacy;
  }

  get activeId(): string {
    return this.#active;
  }

  /** The active DEK's id: what SecretBox callers record. */
  get fingerprint(): string {
    return this.#active;
  }

  has(id: string): boolean {
    return this.#keys.has(id);
  }

  /** Adopt a newer view of the key table (keys are only ever added here, never forgotten). */
  update(keys: ReadonlyMap<string, Buffer>, active: string): void {
    for (const [id, key] of keys) this.#keys.set(id, key);
    if (!this.#keys.has(active)) throw new UnknownDataKeyError(active);
    this.#active = active;
  }

  seal(plaintext: string, associatedData: string): Buffer {
    const header = sealedPrefix(this.#active);
    const key = this.#keys.get(this.#active) as Buffer;
    return Buffer.concat([header, gcmSeal(key, Buffer.from(plaintext, 'utf8'), aad(header, associatedData))]);
  }

  open(sealed: Buffer, associatedData: string): string {
    const by = sealedBy(sealed);
    if (by === 'legacy') {
      if (this.#legacy === undefined) throw new Error('a version-1 value, and no legacy key to open it');
      return gcmOpen(this.#legacy, sealed.subarray(1), Buffer.from(associatedData, 'utf8')).toString('utf8');
    }
    if (by === undefined) throw new Error('sealed secret has an unknown format');
    const key = this.#keys.get(by);
    if (key === undefined) {
      if (this.settled) throw new Error(`sealed with data key ${by}, which the store does not have`);
      throw new UnknownDataKeyError(by);
    }
    const header = sealed.subarray(0, V2_HEADER_BYTES);
    return gcmOpen(key, sealed.subarray(V2_HEADER_BYTES), aad(header, associatedData)).toString('utf8');
  }
}

function aad(header: Buffer, associatedData: string): Buffer {
  return Buffer.concat([header, Buffer.from(associatedData, 'utf8')]);
}

/** nonce (12) | tag (16) | ciphertext */
function gcmSeal(key: Buffer, plaintext: Buffer, associatedData: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(associatedData);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, cipher.getAuthTag(), body]);
}

function gcmOpen(key: Buffer, sealed: Buffer, associatedData: Buffer): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new Error('sealed value is truncated');
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_BYTES));
  decipher.setAAD(associatedData);
  decipher.setAuthTag(sealed.subarray(NONCE_BYTES, NONCE_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES + TAG_BYTES)), decipher.final()]);
}
