/**
 * A pending revocation as both stores keep it: the row's shape, the associated data that binds
 * its sealed tokens to it, and the two ways out of a row (the public view, the opened secrets).
 * The SQL differs per store; what a row means does not.
 */
import { keyId } from '../credential/key.js';
import { ErrorCode, LatchkeyError } from '../errors.js';
import type {
  NewPendingRevocation,
  PendingRevocation,
  RevocationSecrets,
  RevocationTokenType,
} from './contract.js';
import type { SecretBox } from './crypto.js';
import { UnknownDataKeyError } from './envelope.js';

export interface RevocationRow {
  id: string;
  server: string;
  issuer: string;
  subject: string;
  token_type: string;
  client_id: string;
  auth_method: string;
  secrets: Buffer;
  created_at: number;
  expires_at: number;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  claim_owner: string | null;
  claim_expires_at: number | null;
}

/**
 * Associated data binding a sealed token to its row: a ciphertext copied onto another row
 * (another server, or the access-token row of the same logout) fails to open.
 */
export function revocationAad(id: string, row: Pick<PendingRevocation, 'key' | 'tokenType'>): string {
  return `revocation\u0000${id}\u0000${keyId(row.key)}\u0000${row.tokenType}`;
}

export function sealRevocationSecrets(box: SecretBox, id: string, entry: NewPendingRevocation): Buffer {
  return box.seal(JSON.stringify(entry.secrets), revocationAad(id, entry));
}

/** What a new entry is once stored, without its secrets. */
export function addedRevocation(id: string, entry: NewPendingRevocation): PendingRevocation {
  const { secrets: _secrets, ...rest } = entry;
  return { ...rest, key: { ...entry.key }, id, attempts: 0 };
}

export function revocationView(row: RevocationRow): PendingRevocation {
  return {
    id: row.id,
    key: { server: row.server, issuer: row.issuer, subject: row.subject },
    tokenType: row.token_type as RevocationTokenType,
    clientId: row.client_id,
    tokenEndpointAuthMethod: row.auth_method,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    ...(row.last_error === null ? {} : { lastError: row.last_error }),
  };
}

export function openRevocationSecrets(box: SecretBox, row: RevocationRow): RevocationSecrets {
  try {
    return JSON.parse(box.open(row.secrets, revocationAad(row.id, revocationView(row)))) as RevocationSecrets;
  } catch (cause) {
    // Another process rotated the data key: the caller reloads the keys and runs again.
    if (cause instanceof UnknownDataKeyError) throw cause;
    throw new LatchkeyError(
      ErrorCode.STORE_KEY_MISMATCH,
      'a token queued for revocation cannot be decrypted with the current data key.',
      {
        server: row.server,
        retryable: false,
        next: { kind: 'repair-store', detail: 'restore the original data key' },
        cause,
      },
    );
  }
}
