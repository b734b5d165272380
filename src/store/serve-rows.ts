/**
 * Rows of the serve tables as both stores hold them, and the sealing of the connect
 * attempt's PKCE verifier. The SQL differs per store; what a row means does not.
 */
import { ErrorCode, LatchkeyError } from '../errors.js';
import type { SecretBox } from './crypto.js';
import { UnknownDataKeyError } from './envelope.js';
import type { AppKeyRecord, ConnectAttempt } from './serve-contract.js';

/** Associated data binding a sealed verifier to its attempt row. */
export function connectAttemptAad(id: string): string {
  return `connect-attempt\u0000${id}`;
}

/** The columns both stores keep for an attempt, apart from the sealed verifier. */
export interface ConnectAttemptRow {
  id: string;
  subject: string;
  upstream: string;
  server: string;
  return_to: string;
  verifier: Buffer;
  issuer: string;
  client_id: string;
  redirect_uri: string;
  resource: string | null;
  scope: string | null;
  created_at: number;
  expires_at: number;
}

export function attemptFromRow(row: ConnectAttemptRow, verifier: string): ConnectAttempt {
  return {
    id: row.id,
    subject: row.subject,
    upstream: row.upstream,
    server: row.server,
    returnTo: row.return_to,
    verifier,
    issuer: row.issuer,
    clientId: row.client_id,
    redirectUri: row.redirect_uri,
    ...(row.resource === null ? {} : { resource: row.resource }),
    ...(row.scope === null ? {} : { scope: row.scope }),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
  };
}

export function rowValues(attempt: ConnectAttempt, sealed: Buffer): ConnectAttemptRow {
  return {
    id: attempt.id,
    subject: attempt.subject,
    upstream: attempt.upstream,
    server: attempt.server,
    return_to: attempt.returnTo,
    verifier: sealed,
    issuer: attempt.issuer,
    client_id: attempt.clientId,
    redirect_uri: attempt.redirectUri,
    resource: attempt.resource ?? null,
    scope: attempt.scope ?? null,
    created_at: attempt.createdAt,
    expires_at: attempt.expiresAt,
  };
}

export interface AppKeyRow {
  id: string;
  name: string;
  digest: string;
  created_at: number;
  /** Null: every subject (and every key stored before the column was added). */
  subject_prefix: string | null;
}

export function appKeyFromRow(row: AppKeyRow): AppKeyRecord {
  return {
    id: row.id,
    name: row.name,
    digest: row.digest,
    createdAt: Number(row.created_at),
    ...(row.subject_prefix === null ? {} : { subjectPrefix: row.subject_prefix }),
  };
}

export function sealVerifier(box: SecretBox, attempt: ConnectAttempt): Buffer {
  return box.seal(attempt.verifier, connectAttemptAad(attempt.id));
}

export function openAttempt(box: SecretBox, row: ConnectAttemptRow): ConnectAttempt {
  let verifier: string;
  try {
    verifier = box.open(row.verifier, connectAttemptAad(row.id));
  } catch (cause) {
    // Another process rotated the data key: the caller reloads the keys and runs again.
    if (cause instanceof UnknownDataKeyError) throw cause;
    throw new LatchkeyError(
      ErrorCode.STORE_KEY_MISMATCH,
      'a pending connect attempt cannot be decrypted with the current data key.',
      { retryable: false, next: { kind: 'repair-store', detail: 'restore the original data key' }, cause },
    );
  }
  return attemptFromRow(row, verifier);
}
