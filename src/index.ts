/**
 * latchkey's main entry: what an embedder needs to keep OAuth credentials for remote MCP
 * servers. Named exports only; anything not listed here is internal and may change without
 * notice. Loading it costs neither better-sqlite3, nor the MCP SDK, nor oidc-provider (a test
 * proves it): the heavy parts are subpaths, `latchkey/sqlite`, `latchkey/mcp` and
 * `latchkey/proxy`, and `openSqliteStore` / `openPostgresStore` / `openStore` here load SQLite
 * or pg at their first call.
 */
import type { PostgresStoreOptions } from './store/postgres.js';
import type { SqliteStoreOptions } from './store/sqlite.js';
import type { CredentialStore } from './store/contract.js';

// The lifecycle engine

/** Hands out access tokens and keeps them fresh across processes; one per process. */
export { CredentialManager } from './lifecycle/manager.js';
/** What `new CredentialManager()` takes: a store, and optionally an acquisition hook. */
export type { CredentialManagerOptions } from './lifecycle/options.js';
/** Options of `getToken` / `getAccessToken`: subject, scopes, a rejected token, interactive. */
export type { GetTokenOptions } from './lifecycle/manager.js';
/** The events a manager emits (`event`: lifecycle events from every process). */
export type { ManagerEvents } from './lifecycle/manager.js';
/** A usable access token with its type, expiry, scopes, identity and generation. */
export type { AccessToken } from './lifecycle/token-cache.js';
/** The hook the manager calls when it needs a new credential (a login). */
export type { AcquireHook } from './lifecycle/acquire.js';
/** What an acquisition hook is asked for: server, subject, scopes, why, and an abort signal. */
export type { AcquireRequest } from './lifecycle/acquire.js';
/** What an acquisition hook returns: the raw token response, issuer and client id. */
export type { AcquiredTokens } from './lifecycle/acquire.js';

// The fleet refresher (docs/refresher.md)

/** Keep every credential in a shared store fresh, ahead of expiry, on any number of instances. */
export { Refresher, startRefresher } from './lifecycle/refresher/refresher.js';
/** Options of `startRefresher`, with their defaults. */
export type { RefresherOptions } from './lifecycle/refresher/options.js';
/** What a refresher reports: refreshed, adopted, retrying, needs-login, issuer-paused, error. */
export type { RefresherEvent, RefresherStats } from './lifecycle/refresher/events.js';

// Credentials

/** The canonical form of a server URL, the one credentials are keyed by. */
export { canonicalServer } from './credential/key.js';
/** The default subject (`local`): the one person using this machine. */
export { LOCAL_SUBJECT } from './credential/key.js';
/** Which credential: (server, issuer, subject). */
export type { CredentialKey } from './credential/key.js';
/** A credential as a store returns it, with its generation and status. */
export type { StoredCredential } from './credential/model.js';
/** A credential's persisted state: valid, retrying (with backoff) or needs-login. */
export type { CredentialStatus } from './credential/model.js';
/** A short, stable, non-reversible name for a secret, safe to log. */
export { fingerprint } from './redact.js';
/** A token shortened to something safe to show. */
export { redactToken } from './redact.js';

// Stores

/** Where credentials live; every process sharing one store shares credentials. */
export type { CredentialStore } from './store/contract.js';
/** Which credentials `listCredentials` returns. */
export type { CredentialFilter } from './store/contract.js';
/** Which lifecycle events `readEvents` returns. */
export type { EventQuery } from './store/contract.js';
/** One lifecycle event (login, refresh, failure, logout...); never holds a secret. */
export type { LifecycleEvent } from './store/contract.js';
/** The lifecycle event types. */
export { EventType } from './store/contract.js';
/** A store in this process's memory: for tests and short-lived embedders. */
export { createMemoryStore } from './store/memory.js';
/** The directory the CLI keeps its store in (LATCHKEY_HOME, else the platform default). */
export { defaultHome } from './store/paths.js';
/** Options of `openSqliteStore`: home, path, key source or key provider, environment. */
export type { SqliteStoreOptions } from './store/sqlite.js';
/** A key-encryption key of your own (a KMS): wraps the store's data keys (docs/security.md). */
export type { KeyProvider } from './store/envelope.js';
/** Rotate a store's data key (and optionally its key-encryption key) while it is in use. */
export { rekeyStore } from './store/rekey.js';
/** Whether a rotation is unfinished: more than one data key or key-encryption key in use. */
export { keyRotationStatus } from './store/rekey.js';
/** Options and results of `rekeyStore` and `keyRotationStatus`. */
export type { KeyRotationStatus, RekeyOptions, RekeyProgress, RekeyResult } from './store/rekey.js';

/**
 * Open (creating if needed) the SQLite store the CLI and the proxy share, in
 * `defaultHome()` unless told otherwise. better-sqlite3 is loaded at the first call, so that
 * an embedder with its own store never pays for it; `latchkey/sqlite` exports the same
 * function without the indirection.
 */
export async function openSqliteStore(options?: SqliteStoreOptions): Promise<CredentialStore> {
  const sqlite = await import('./store/sqlite.js');
  return sqlite.openSqliteStore(options);
}

/** Options of `openPostgresStore`: URL, pool size, timeouts, key source, event pruning. */
export type { PostgresStoreOptions } from './store/postgres.js';

/**
 * Open (creating or upgrading its schema if needed) a PostgreSQL store, shared by any number
 * of instances. pg is loaded at the first call; `latchkey/postgres` exports the same function.
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<CredentialStore> {
  const postgres = await import('./store/postgres.js');
  return postgres.openPostgresStore(options);
}

/**
 * Open the store one URL names: a SQLite path or `postgres://…`; without one,
 * `LATCHKEY_STORE`, else the embedded SQLite store. The CLI's `--store` takes the same URLs.
 */
export { openStore } from './store/open.js';
/** Options of `openStore`: the environment, and per-kind options for SQLite and Postgres. */
export type { OpenStoreOptions } from './store/open.js';

// Logging in and out

/** The acquisition hook that logs in: browser (PKCE), device code, client credentials or workload identity. */
export { createLoginHook } from './login/login.js';
/** Options of `createLoginHook`: store, flow, client, browser opener, notices. */
export type { LoginOptions } from './login/login.js';
/** `browser`, `device`, `client-credentials` or `workload-identity`. */
export type { LoginFlow } from './login/login.js';
export type { IdpSource } from './login/enterprise.js';
/** A client registered ahead of time (id, secret or private key) instead of RFC 7591. */
export type { ClientConfig } from './oauth/types.js';
/** An acquisition hook for machine-to-machine access (client_credentials grant). */
export { clientCredentialsHook } from './login/client-credentials.js';
/** Options of `clientCredentialsHook`. */
export type { ClientCredentialsHookOptions } from './login/client-credentials.js';
/** Thrown by `manager.logout` when a credential could not be logged out completely. */
export { LogoutError } from './lifecycle/logout.js';
/** Options of `manager.logout`. */
export type { LogoutOptions } from './lifecycle/logout.js';
/** What a logout did, per credential: revoked at the AS, deleted locally, notes. */
export type { LogoutReport } from './lifecycle/logout.js';

// Errors and logging

/** The one error type latchkey throws, with a stable code, retryable flag and next action. */
export { LatchkeyError } from './errors.js';
/** The stable error codes. */
export { ErrorCode } from './errors.js';
/** Is this a LatchkeyError (also across copies of the package)? */
export { isLatchkeyError } from './errors.js';
/** What should happen after a failure, as data, for the embedder to word. */
export type { NextAction } from './errors.js';
/** latchkey's redacting logger (JSON lines on stderr by default). */
export { createLogger } from './log.js';
/** A logger that drops everything. */
export { silentLogger } from './log.js';
/** The logger interface an embedder may implement. */
export type { Logger } from './log.js';
/** Options of `createLogger`: level and where lines go. */
export type { LoggerOptions } from './log.js';

// HTTP

/** A `fetch` that adds the bearer token, retries once on 401 and handles step-up on 403. */
export { createAuthFetch } from './mcp/auth-fetch.js';
/** Options of `createAuthFetch`. */
export type { AuthFetchOptions } from './mcp/auth-fetch.js';
