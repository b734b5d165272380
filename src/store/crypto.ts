import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM sealing of secrets at rest. The associated data binds each ciphertext to the
 * row it belongs to, so a sealed token copied onto another credential's row fails to open
 * instead of silently authenticating as the wrong server.
 *
 * Layout: version (1 byte) | nonce (12) | tag (16) | ciphertext.
 */
const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const DATA_KEY_BYTES = 32;

export interface SecretBox {
  seal(plaintext: string, associatedData: string): Buffer;
  /** Throws when the key is wrong or the bytes or associated data were altered. */
  open(sealed: Buffer, associatedData: string): string;
  /** A short, non-secret identifier of the key, recorded in the store to detect a key change. */
  readonly fingerprint: string;
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== DATA_KEY_BYTES) throw new Error(`data key must be ${DATA_KEY_BYTES} bytes`);
  return {
    fingerprint: keyFingerprint(key),
    seal(plaintext, associatedData) {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, nonce);
      cipher.setAAD(Buffer.from(associatedData, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return Buffer.concat([Buffer.of(VERSION), nonce, cipher.getAuthTag(), body]);
    },
    open(sealed, associatedData) {
      if (sealed.length < 1 + NONCE_BYTES + TAG_BYTES || sealed[0] !== VERSION) {
        throw new Error('sealed secret has an unknown format');
      }
      const nonce = sealed.subarray(1, 1 + NONCE_BYTES);
      const tag = sealed.subarray(1 + NONCE_BYTES, 1 + NONCE_BYTES + TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, nonce);
      decipher.setAAD(Buffer.from(associatedData, 'utf8'));
      decipher.setAuthTag(tag);
      const body = sealed.subarray(1 + NONCE_BYTES + TAG_BYTES);
      return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    },
  };
}

/** A one-way, domain-separated digest: it identifies the key without helping to guess it. */
export function keyFingerprint(key: Buffer): string {
  return createHash('sha256')
    .update('latchkey data-key fingerprint v1\0')
    .update(key)
    .digest('hex')
    .slice(0, 16);
}

export function newDataKey(): Buffer {
  return randomBytes(DATA_KEY_BYTES);
}

/**
 * Parse a data key given as text (LATCHKEY_KEY, the key file, the keyring entry): 64 hex
 * characters or base64 / base64url of exactly 32 bytes. Returns undefined when it is neither.
 */
export function parseDataKey(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    const bytes = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (bytes.length === DATA_KEY_BYTES) return bytes;
  }
  return undefined;
}
