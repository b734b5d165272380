import { createHash, randomBytes } from 'node:crypto';

/** Key helpers shared by the sealing (envelope.ts) and the KEK sources (data-key.ts). */
export const DATA_KEY_BYTES = 32;

/** Seals and opens secrets at rest; envelope.ts's DataKeyRing is the implementation. */
export interface SecretBox {
  seal(plaintext: string, associatedData: string): Buffer;
  /** Throws when the key is wrong or the bytes or associated data were altered. */
  open(sealed: Buffer, associatedData: string): string;
  /** A short, non-secret identifier of the key that seals now. */
  readonly fingerprint: string;
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
