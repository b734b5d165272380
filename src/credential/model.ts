import type { CredentialKey } from './key.js';

/** Secret parts of a credential. Stores encrypt these at rest; nothing else is secret. */
export interface TokenSecrets {
  accessToken: string;
  refreshToken?: string;
  idToken?: string;
}

/**
 * The tokens for one (server, issuer, subject), as latchkey holds them.
 * Times are absolute epoch milliseconds.
 */
export interface CredentialRecord {
  key: CredentialKey;
  secrets: TokenSecrets;
  /** `Bearer` or `DPoP`, as the token endpoint said. */
  tokenType: string;
  /** Scopes granted (from the token response, else the ones requested). */
  scopes: readonly string[];
  /** The client_id that obtained the tokens; refresh must use the same client. */
  clientId: string;
  /** When the token request that produced the access token was *sent*. */
  obtainedAt: number;
  /** Access-token expiry. Absent: "valid until rejected" (a 401 triggers one refresh). */
  expiresAt?: number;
  /** Where `expiresAt` came from, for status displays and diagnosis. */
  expirySource: 'expires_in' | 'jwt' | 'none';
  /** Refresh-token expiry when the AS reported it (`refresh_token_expires_in`). */
  refreshTokenExpiresAt?: number;
  /**
   * The user at the identity provider (email, username or `sub` from the ID token or a JWT
   * access token), when the tokens say. For display only; not a secret, stored in clear.
   */
  account?: string;
  /**
   * The RFC 8707 `resource` sent when the tokens were obtained, sent again on refresh: the
   * protected-resource metadata's `resource` or a `--resource` override, which may differ
   * from the server URL. `null`: none was sent (`--no-resource`, Entra v2), so none is sent
   * on refresh either. Absent (older records): the server URL.
   */
  resource?: string | null;
  /**
   * True when latchkey obtained the tokens itself. Externally supplied tokens are never
   * revoked at the AS on logout, only forgotten.
   */
  owned: boolean;
  /**
   * The issuer of the enterprise IdP session the tokens were derived from (an ID-JAG,
   * SEP-990). Logging out of that IdP revokes and deletes this credential too; absent for
   * every other login.
   */
  idp?: string;
  /** True for an enterprise IdP session itself (`login --idp`): the source of ID-JAGs. */
  idpSession?: boolean;
}

/** Lifecycle state shared by all processes, kept beside the credential. */
export type CredentialState = 'valid' | 'refresh-due' | 'retrying' | 'needs-login';

export interface CredentialStatus {
  /** Persisted state: `valid`, `retrying` (transient failures) or `needs-login`. */
  state: 'valid' | 'retrying' | 'needs-login';
  /** Consecutive failed refresh attempts since the last success. */
  failures: number;
  /** Earliest time another refresh attempt may be made (backoff / Retry-After), epoch ms. */
  nextAttemptAt?: number;
  lastRefreshAt?: number;
  lastError?: { code: string; message: string; at: number };
}

/** A credential as read back from a store. */
export interface StoredCredential extends CredentialRecord {
  /** Increases by one on every token write. Writes are conditional on it. */
  generation: number;
  status: CredentialStatus;
  updatedAt: number;
}
