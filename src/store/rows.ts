import { keyId, type CredentialKey } from '../credential/key.js';
import type { CredentialStatus, StoredCredential, TokenSecrets } from '../credential/model.js';
import { ErrorCode, LatchkeyError } from '../errors.js';
import { loginAction } from '../next-action.js';
import type { CredentialRecord } from '../credential/model.js';
import type { DiscoveryKind, DiscoveryRecord, Lease, LifecycleEvent, Registration } from './contract.js';
import type { SecretBox } from './crypto.js';
import { UnknownDataKeyError } from './envelope.js';
import { StringTable } from './string-table.js';

/**
 * Row shapes both stores share (SQLite and Postgres hold the same columns), and their mapping to
 * the contract's types. Secrets are sealed and opened here only.
 */
export interface CredentialRow {
  server: string;
  issuer: string;
  subject: string;
  generation: number;
  secrets: Buffer;
  record: string;
  status: string;
  updated_at: number;
}

export interface RegistrationRow {
  issuer: string;
  record: string;
  client_secret: Buffer | null;
}

export interface EventRow {
  id: number;
  at: number;
  type: string;
  server: string;
  issuer: string;
  subject: string;
  generation: number | null;
  pid: number;
  detail: string | null;
}

type PublicFields = Omit<CredentialRecord, 'key' | 'secrets'>;

export function credentialAad(key: CredentialKey): string {
  return `credential\u0000${keyId(key)}`;
}

export function dpopKeyAad(alg: string): string {
  return `dpop-key\u0000${alg}`;
}

export function registrationAad(issuer: string): string {
  return `registration\u0000${issuer}`;
}

export function sealCredential(
  box: SecretBox,
  record: CredentialRecord,
): { secrets: Buffer; record: string } {
  const { key, secrets, ...fields } = record;
  return { secrets: box.seal(JSON.stringify(secrets), credentialAad(key)), record: JSON.stringify(fields) };
}

/** Shared copies of what credentials repeat; see string-table.ts. */
const shared = new StringTable();

export function openCredential(box: SecretBox, row: CredentialRow): StoredCredential {
  const key = { server: shared.share(row.server), issuer: shared.share(row.issuer), subject: row.subject };
  const fields = JSON.parse(row.record) as PublicFields;
  shareFields(fields);
  let secrets: TokenSecrets;
  try {
    secrets = JSON.parse(box.open(row.secrets, credentialAad(key))) as TokenSecrets;
  } catch (cause) {
    if (cause instanceof UnknownDataKeyError) throw cause; // another process rotated: reload, retry
    throw new LatchkeyError(
      ErrorCode.STORE_KEY_MISMATCH,
      'the stored tokens cannot be decrypted with the current data key.',
      {
        server: key.server,
        retryable: false,
        next: loginAction(key.server, {
          detail: 'that replaces the credential; restoring the original data key would recover it instead',
        }),
        cause,
      },
    );
  }
  // Completed in place rather than spread into a new literal: V8 gave every spread-built
  // credential a hidden class (and descriptor array) of its own, about 400 bytes each, kept
  // for as long as the credential is cached (issue 16). Same properties, same order.
  const cred = fields as PublicFields & Omit<StoredCredential, keyof PublicFields>;
  cred.key = key;
  cred.secrets = secrets;
  cred.generation = row.generation;
  cred.status = JSON.parse(row.status) as CredentialStatus;
  if (typeof cred.status.state === 'string') cred.status.state = shared.share(cred.status.state);
  cred.updatedAt = row.updated_at;
  return cred;
}

/** The record's repeated strings, replaced by their shared copies (the object is fresh). */
function shareFields(fields: PublicFields): void {
  // Only fields present: an older record without one must not gain it as undefined.
  if (typeof fields.tokenType === 'string') fields.tokenType = shared.share(fields.tokenType);
  if (typeof fields.clientId === 'string') fields.clientId = shared.share(fields.clientId);
  if (typeof fields.expirySource === 'string') fields.expirySource = shared.share(fields.expirySource);
  const scopes: unknown = fields.scopes;
  if (Array.isArray(scopes)) for (let i = 0; i < scopes.length; i++) scopes[i] = shared.share(scopes[i]);
}

export function sealRegistration(
  box: SecretBox,
  registration: Registration,
): { record: string; client_secret: Buffer | null } {
  const { clientSecret, ...fields } = registration;
  return {
    record: JSON.stringify(fields),
    client_secret:
      clientSecret === undefined ? null : box.seal(clientSecret, registrationAad(registration.issuer)),
  };
}

export function openRegistration(box: SecretBox, row: RegistrationRow): Registration {
  const fields = JSON.parse(row.record) as Omit<Registration, 'clientSecret'>;
  if (row.client_secret === null) return fields;
  try {
    return { ...fields, clientSecret: box.open(row.client_secret, registrationAad(row.issuer)) };
  } catch (cause) {
    if (cause instanceof UnknownDataKeyError) throw cause;
    throw new LatchkeyError(
      ErrorCode.STORE_KEY_MISMATCH,
      `the stored client secret for ${row.issuer} cannot be decrypted with the current data key.`,
      { retryable: false, next: { kind: 'repair-store', detail: 'restore the original data key' }, cause },
    );
  }
}

export function eventFromRow(row: EventRow): LifecycleEvent {
  return {
    id: row.id,
    at: row.at,
    type: row.type as LifecycleEvent['type'],
    server: row.server,
    issuer: row.issuer,
    subject: row.subject,
    ...(row.generation === null ? {} : { generation: row.generation }),
    pid: row.pid,
    ...(row.detail === null
      ? {}
      : { detail: JSON.parse(row.detail) as NonNullable<LifecycleEvent['detail']> }),
  };
}

export const VALID_STATUS: CredentialStatus = { state: 'valid', failures: 0 };

export interface DiscoveryRow {
  kind: DiscoveryKind;
  id: string;
  document: string;
  source_url: string;
  fetched_at: number;
}

/** A cached discovery document; `text` reads the id as the store keeps text. */
export function discoveryFromRow(
  row: DiscoveryRow,
  text: (stored: string) => string = String,
): DiscoveryRecord {
  return {
    kind: row.kind,
    id: text(row.id),
    document: JSON.parse(row.document) as Record<string, unknown>,
    sourceUrl: row.source_url,
    fetchedAt: row.fetched_at,
  };
}

/** A leases row, as both stores hold it. */
export interface LeaseRow {
  server: string;
  issuer: string;
  subject: string;
  owner: string;
  pid: number;
  host: string;
  acquired_at: number;
  expires_at: number;
}

export function leaseFromRow(row: LeaseRow): Lease {
  return {
    key: { server: row.server, issuer: row.issuer, subject: row.subject },
    owner: row.owner,
    pid: row.pid,
    host: row.host,
    acquiredAt: row.acquired_at,
    expiresAt: row.expires_at,
  };
}
