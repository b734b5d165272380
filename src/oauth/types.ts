import type { webcrypto } from 'node:crypto';

import type * as oauth from 'oauth4webapi';

/**
 * Shared shapes of the OAuth layer. Each protocol concept has its own module
 * (www-authenticate, resource-metadata, server-metadata, discovery, registration,
 * authorization-code, device-authorization, client-credentials, revocation); these types
 * are what they hand each other.
 */

/** A parsed `WWW-Authenticate` challenge (RFC 9110 §11.6.1), scheme lowercased. */
export interface Challenge {
  scheme: string;
  /** auth-params with lowercased names; values unquoted and unescaped. */
  params: Record<string, string>;
  /** token68 form (e.g. `Negotiate abc==`), when the challenge used it. */
  token68?: string;
}

/** What the MCP server told us in a 401/403 Bearer challenge (RFC 6750 §3, RFC 9728 §5.1). */
export interface BearerChallenge {
  /** The header also (or only) challenged with the `DPoP` scheme: the server takes DPoP tokens. */
  dpop?: true;
  resourceMetadata?: string;
  scope?: readonly string[];
  error?: string;
  errorDescription?: string;
}

/** The result of following the MCP discovery chain for one server. */
export interface ServerDiscovery {
  /** Canonical server URI (credential key). */
  server: string;
  /** The RFC 8707 `resource` value to send: PRM `resource` when valid for this server, else `server`. */
  resource: string;
  /** The protected-resource metadata document, when one was found. */
  resourceMetadata?: Record<string, unknown>;
  /** Where the PRM document came from. */
  resourceMetadataUrl?: string;
  /** Validated AS metadata (issuer matched the URL it was derived from). */
  authorizationServer: oauth.AuthorizationServer;
  /** PRM `scopes_supported`, if any. */
  scopesSupported?: readonly string[];
}

/** How latchkey identifies itself to an AS; pre-registered values win over CIMD over DCR. */
export interface ClientConfig {
  /** A pre-registered client id for this server's AS. */
  clientId?: string;
  /** Secret of a pre-registered confidential client. */
  clientSecret?: string;
  /** Default: `client_secret_basic` with a secret, `none` without. */
  tokenEndpointAuthMethod?: 'none' | 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  /** Private key for `private_key_jwt` (a CryptoKey or PKCS#8 PEM) and its `kid`. */
  privateKey?: { key: webcrypto.CryptoKey | string; kid?: string; alg?: string };
  /** The issuer a pre-registered client belongs to; using it at another AS is refused (AUTH-29). */
  issuer?: string;
  /**
   * Bind tokens to the store's DPoP key when the AS lists ES256 in
   * `dpop_signing_alg_values_supported` (docs/dpop.md). Default true; false logs in with
   * bearer tokens, for a server that does not accept DPoP though its AS offers it.
   */
  dpop?: boolean;
  /** HTTPS URL of a Client ID Metadata Document, used when the AS supports CIMD. */
  clientMetadataUrl?: string;
  /** Shown on consent screens. Default `latchkey`. */
  clientName?: string;
  /**
   * Workload identity federation (login flow `workload-identity`): the file holding the JWT
   * the platform issues to this workload, sent as the RFC 7523 `assertion`. Read at each
   * token request, so rotation is followed. Its audience must be what the AS expects.
   */
  workloadTokenFile?: string;
}

/**
 * What the user is shown to approve a device login (RFC 8628): the login flow produces it,
 * the proxy hands it to its host, the MCP error words name it.
 */
export interface DevicePrompt {
  /** Where the user goes (RFC 8628 `verification_uri`). */
  verificationUri: string;
  /** The same page with the code filled in, for QR codes and links. */
  verificationUriComplete?: string;
  userCode: string;
  /** Epoch ms after which the code no longer works. */
  expiresAt: number;
}
