import type { CredentialStore } from './contract.js';

/**
 * The tables `latchkey serve` adds to a store: the app keys that may call its API, and the
 * pending connect attempts of its web login. Kept out of CredentialStore so that the
 * credential engine's consumers do not see them; the SQLite and Postgres stores implement
 * them (test/store/serve-tables.test.ts runs one suite against both), the memory store does
 * not, since a gateway whose connect link can be completed by another instance needs a
 * shared store.
 */
export interface ServeTables extends AppKeyTable, ConnectAttemptTable, PortalTable {}

export type ServeStore = CredentialStore & ServeTables;

/** Whether `store` has the serve tables (SQLite and Postgres do, memory does not). */
export function hasServeTables(store: CredentialStore): store is ServeStore {
  const candidate = store as Partial<ServeTables>;
  return typeof candidate.addAppKey === 'function' && typeof candidate.takeConnectAttempt === 'function';
}

/** An application allowed to call the serve API. Only a digest of its key is ever stored. */
export interface AppKeyRecord {
  /** Public part of the key, also its lookup id (not secret). */
  id: string;
  /** A label chosen by the operator (`--name`). */
  name: string;
  /** Hex SHA-256 of the whole key; compared in constant time by the serve layer. */
  digest: string;
  createdAt: number;
  /**
   * The key may only name subjects starting with this (serve/scopes.ts). Absent: every
   * subject, which is also what a key stored before scopes existed means.
   */
  subjectPrefix?: string;
}

export interface AppKeyTable {
  /** Adds a key; an existing id is an error (ids are random, so a clash is a bug). */
  addAppKey(record: AppKeyRecord): Promise<void>;
  getAppKey(id: string): Promise<AppKeyRecord | undefined>;
  listAppKeys(): Promise<AppKeyRecord[]>;
  /** False when no key has that id. */
  deleteAppKey(id: string): Promise<boolean>;
}

/**
 * One started web login (the connect flow): everything the callback needs to finish it on
 * any instance. `id` is a digest of the OAuth `state`, so the table alone does not give the
 * state away; the PKCE verifier is sealed like every other secret in the store.
 */
export interface ConnectAttempt {
  id: string;
  subject: string;
  upstream: string;
  /** The canonical MCP server URL the credential is saved under. */
  server: string;
  returnTo: string;
  verifier: string;
  issuer: string;
  clientId: string;
  redirectUri: string;
  /** The RFC 8707 resource sent in the authorization request, to send again with the code. */
  resource?: string;
  /** Space-separated scopes asked for. */
  scope?: string;
  createdAt: number;
  expiresAt: number;
}

export interface ConnectAttemptTable {
  addConnectAttempt(attempt: ConnectAttempt): Promise<void>;
  /**
   * Remove the attempt and return it if it has not expired at `now` (default: the store's
   * clock, Date.now() for SQLite). Single use: of two concurrent takes, at most one gets it.
   * Expired attempts are deleted on the way.
   */
  takeConnectAttempt(id: string, now?: number): Promise<ConnectAttempt | undefined>;
}

/**
 * A portal grant (docs/serve.md, "The portal"): either a single-use link an app asked for
 * on behalf of its user, or the browser session that link was exchanged for. `id` is a
 * SHA-256 digest of the random value the browser holds (the link's ticket, the session
 * cookie), so the table alone lets no one in.
 */
export interface PortalGrant {
  id: string;
  subject: string;
  createdAt: number;
  expiresAt: number;
}

export interface PortalTable {
  addPortalLink(link: PortalGrant): Promise<void>;
  /**
   * Remove the link and return it if it has not expired at `now` (default: the store's
   * clock). Single use, like a connect attempt; expired links are deleted on the way.
   */
  takePortalLink(id: string, now?: number): Promise<PortalGrant | undefined>;
  /** Adds a session; expired sessions are deleted on the way. */
  addPortalSession(session: PortalGrant): Promise<void>;
  /** The session if it exists and has not expired at `now` (default: the store's clock). */
  getPortalSession(id: string, now?: number): Promise<PortalGrant | undefined>;
  /** False when there was no such session. */
  deletePortalSession(id: string): Promise<boolean>;
}
