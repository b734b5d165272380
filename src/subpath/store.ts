/**
 * `latchkey/store`: the store contract, for writing a store of your own (issue 16's PostgreSQL
 * store is written against it). Types only: importing it loads nothing. One object implements
 * all seven parts; each consumer inside latchkey asks only for the part it uses.
 */

/** All seven parts, plus `kind`, `security` and `close`: what CredentialManager takes. */
export type { CredentialStore, StoreSecurity } from '../store/contract.js';
/** Credentials, keyed by (server, issuer, subject), written compare-and-set. */
export type { CredentialKey } from '../credential/key.js';
/** A stored credential, its record and its shared lifecycle status. */
export type { CredentialRecord, CredentialStatus, StoredCredential } from '../credential/model.js';
export type { CredentialFilter, CredentialTable, WriteCondition, WriteResult } from '../store/contract.js';
/** Dynamic client registrations, per (issuer, redirect URIs). */
export type { Registration, RegistrationCache } from '../store/contract.js';
/** Cached protected-resource and authorization-server metadata. */
export type { DiscoveryCache, DiscoveryKind, DiscoveryRecord } from '../store/contract.js';
/** Leases: at most one refresh or login per credential across processes. */
export type { Lease, LeaseHolder, LeaseTable } from '../store/contract.js';
/** When each credential is next due for refresh; claimed in batches by a fleet refresher. */
export type { DueClaim, DueIndex } from '../store/contract.js';
/** The lifecycle event log every write appends to, and its watch. */
export type { EventInput, EventLog, EventQuery, LifecycleEvent } from '../store/contract.js';
/** Revocations a logout could not finish, retried later. */
export type {
  ClaimedRevocation,
  NewPendingRevocation,
  PendingRevocation,
  PendingRevocationStore,
  RevocationClaim,
  RevocationSchedule,
  RevocationSecrets,
  RevocationTokenType,
} from '../store/contract.js';
