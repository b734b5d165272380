import type * as oauth from 'oauth4webapi';

import { secrets } from '../redact.js';
import { ErrorCode, LatchkeyError } from '../errors.js';
import { configure, loginAction } from '../next-action.js';
import type { Registration, RegistrationCache } from '../store/contract.js';
import { isLoopbackUrl } from './loopback.js';
import { registerDynamically, requestedGrantTypes, stringList } from './dynamic-registration.js';
import type { ClientConfig } from './types.js';

/**
 * Client registration: obtain the client identity latchkey uses at one authorization server
 * (MCP 2025-11-25 "Client Registration", AUTH-15..29). Priority (AUTH-15):
 *   1. a pre-registered client from the configuration (`--client-id`), or one stored earlier
 *      for this issuer;
 *   2. a Client ID Metadata Document, when the AS advertises support (AUTH-17..22);
 *   3. RFC 7591 dynamic registration, when the AS has a registration endpoint (AUTH-24);
 *   4. otherwise a typed error asking the user for a client id.
 * Registrations are stored per AS issuer (AUTH-27), so a server that moves to another AS
 * gets a new one (AUTH-28) and a client configured for one AS is never sent to another
 * (AUTH-29).
 */
export interface EnsureRegistrationOptions {
  store: RegistrationCache;
  /** The MCP server being logged in to; named in errors. */
  server: string;
  /** Validated metadata of the server's authorization server. */
  as: oauth.AuthorizationServer;
  config: ClientConfig;
  /** Redirect URIs the flow will use (empty for device and client-credentials flows). */
  redirectUris: readonly string[];
  /** Grant types the flow will use; `refresh_token` is always added (AUTH-60). */
  grantTypes: readonly string[];
  /** OIDC DCR `application_type` (AUTH-25). Default `native`: latchkey runs on the user's machine. */
  applicationType?: 'native' | 'web';
  fetch?: typeof fetch | undefined;
  signal?: AbortSignal | undefined;
  /** Timeout of one registration request. Default 30 000 ms. */
  timeoutMs?: number;
  /**
   * Register a new public (secretless) client even when a stored dynamic one would do. A
   * login after the AS refused the grant sets it: some authorization servers (better-auth)
   * send a person to their sign-in page before they check the client, so a client the AS
   * has forgotten (reset, purged) shows up only as an error page after the person signed
   * in, which latchkey never sees. A dead grant is the one sign latchkey gets. Credentials
   * issued to the old client keep refreshing with their own client id; confidential clients
   * are kept, since others need their secret.
   */
  renewPublicClient?: boolean;
}

export type RegistrationMethod = Registration['method'];

/** Treat a client secret as expired this long before `client_secret_expires_at`. */
const SECRET_EXPIRY_MARGIN_MS = 60_000;

/**
 * Which mechanism AUTH-15 picks for this AS and configuration, ignoring anything stored.
 * `undefined`: none is available and the user must supply a client id.
 */
export function chooseRegistrationMethod(
  as: oauth.AuthorizationServer,
  config: ClientConfig,
): RegistrationMethod | undefined {
  if (config.clientId !== undefined) return 'pre-registered';
  if (
    as.client_id_metadata_document_supported === true &&
    config.clientMetadataUrl !== undefined &&
    isClientIdMetadataDocumentUrl(config.clientMetadataUrl)
  ) {
    return 'client-id-metadata-document';
  }
  if (typeof as.registration_endpoint === 'string') return 'dynamic';
  return undefined;
}

/** AUTH-18: an https URL with a path component (not just `/`), and no fragment. */
export function isClientIdMetadataDocumentUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return url.protocol === 'https:' && url.pathname !== '/' && url.hash === '' && url.username === '';
}

/** The client identity to use at `as`, registering (and storing) one when needed. */
export async function ensureRegistration(options: EnsureRegistrationOptions): Promise<Registration> {
  checkConfig(options);
  const method = chooseRegistrationMethod(options.as, options.config);
  if (method === 'pre-registered') return savePreRegistered(options);
  const stored = await options.store.getRegistration(options.as.issuer);
  // A client the user configured for this issuer earlier (`--client-id` once) outranks
  // anything latchkey could register by itself.
  if (stored?.method === 'pre-registered') return stored;
  if (method === 'client-id-metadata-document') return saveMetadataDocumentClient(options, stored);
  if (method === 'dynamic') return reuseOrRegister(options, stored);
  throw new LatchkeyError(
    ErrorCode.INVALID_INPUT,
    `the authorization server ${options.as.issuer} offers no way for latchkey to register itself (no client ID metadata document support and no registration endpoint).`,
    {
      server: options.server,
      retryable: false,
      next: loginAction(options.server, {
        needsClientId: true,
        detail: `its issuer is ${options.as.issuer}`,
      }),
    },
  );
}

/** CIMD (AUTH-17..20): the document URL is the client id; nothing is sent to the AS. */
async function saveMetadataDocumentClient(
  { as, config, store }: EnsureRegistrationOptions,
  stored: Registration | undefined,
): Promise<Registration> {
  const clientId = config.clientMetadataUrl as string;
  if (stored?.method === 'client-id-metadata-document' && stored.clientId === clientId) return stored;
  const registration: Registration = {
    issuer: as.issuer,
    clientId,
    tokenEndpointAuthMethod: 'none',
    method: 'client-id-metadata-document',
    registeredAt: Date.now(),
  };
  await store.putRegistration(registration);
  return registration;
}

async function reuseOrRegister(
  options: EnsureRegistrationOptions,
  stored: Registration | undefined,
): Promise<Registration> {
  const renew = options.renewPublicClient === true && stored?.tokenEndpointAuthMethod === 'none';
  if (stored?.method === 'dynamic' && reusable(stored, options) && !renew) {
    secrets.add(stored.clientSecret);
    return stored;
  }
  const registration = await registerDynamically(options);
  await options.store.putRegistration(registration);
  return registration;
}

/**
 * Forget the registration stored for `issuer`, e.g. after the AS answered `invalid_client`;
 * the caller then calls ensureRegistration again (once). With `clientId`, only that client is
 * forgotten, so a registration another process has just replaced it with survives.
 */
export async function evictRegistration(
  store: RegistrationCache,
  issuer: string,
  clientId?: string,
): Promise<boolean> {
  const stored = await store.getRegistration(issuer);
  if (stored === undefined || (clientId !== undefined && stored.clientId !== clientId)) return false;
  await store.deleteRegistration(issuer);
  return true;
}

/**
 * After `invalid_client` outside a login (refresh, revocation): forget `clientId` at `issuer`
 * if latchkey registered it itself, so the next login registers afresh instead of presenting
 * a client the AS forgot and waiting on an authorization page that never redirects. A
 * pre-registered client stays: only the user can fix it, and forgetting it would quietly
 * replace it with a dynamic registration at the next login.
 */
export async function evictRejectedRegistration(
  store: RegistrationCache,
  issuer: string,
  clientId: string,
): Promise<boolean> {
  const stored = await store.getRegistration(issuer);
  if (stored === undefined || stored.clientId !== clientId || stored.method === 'pre-registered')
    return false;
  await store.deleteRegistration(issuer);
  return true;
}

function checkConfig({ as, config, server }: EnsureRegistrationOptions): void {
  if (config.clientId !== undefined && config.issuer !== undefined && config.issuer !== as.issuer) {
    // AUTH-29: the issuer is compared as an exact string, like every issuer comparison.
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      `the configured client ${JSON.stringify(config.clientId)} belongs to ${JSON.stringify(config.issuer)}, but this server now uses the authorization server ${JSON.stringify(as.issuer)}; latchkey will not present that client there.`,
      {
        server,
        retryable: false,
        next: loginAction(server, {
          needsClientId: true,
          detail: `its issuer is ${as.issuer}; or remove the configured client so latchkey registers itself`,
        }),
      },
    );
  }
  if (config.clientMetadataUrl !== undefined && !isClientIdMetadataDocumentUrl(config.clientMetadataUrl)) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      `the client metadata document URL ${JSON.stringify(config.clientMetadataUrl)} is not an https URL with a path.`,
      {
        server,
        retryable: false,
        next: configure('use an https URL such as https://example.com/client.json'),
      },
    );
  }
  const method = config.tokenEndpointAuthMethod;
  if ((method === 'client_secret_basic' || method === 'client_secret_post') && !config.clientSecret) {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, `${method} needs a client secret.`, {
      server,
      retryable: false,
      next: configure('pass the client secret too, or choose token endpoint auth method `none`'),
    });
  }
  if (method === 'private_key_jwt' && config.privateKey === undefined) {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'private_key_jwt needs a private key.', {
      server,
      retryable: false,
      next: configure('configure the private key registered for this client'),
    });
  }
}

/** The configured client, stored per issuer so refreshes authenticate the same way (AUTH-27). */
async function savePreRegistered({ as, config, store }: EnsureRegistrationOptions): Promise<Registration> {
  const clientId = config.clientId as string;
  const registration: Registration = {
    issuer: as.issuer,
    clientId,
    tokenEndpointAuthMethod: preRegisteredAuthMethod(config),
    method: 'pre-registered',
    registeredAt: Date.now(),
  };
  if (config.clientSecret !== undefined) {
    registration.clientSecret = config.clientSecret;
    secrets.add(config.clientSecret);
  }
  const stored = await store.getRegistration(as.issuer);
  if (
    stored?.method === 'pre-registered' &&
    stored.clientId === registration.clientId &&
    stored.clientSecret === registration.clientSecret &&
    stored.tokenEndpointAuthMethod === registration.tokenEndpointAuthMethod
  ) {
    return stored;
  }
  await store.putRegistration(registration);
  return registration;
}

/** `client_secret_basic` with a secret, `private_key_jwt` with a key, else `none`. */
export function preRegisteredAuthMethod(config: ClientConfig): string {
  if (config.tokenEndpointAuthMethod !== undefined) return config.tokenEndpointAuthMethod;
  if (config.clientSecret !== undefined) return 'client_secret_basic';
  if (config.privateKey !== undefined) return 'private_key_jwt';
  return 'none';
}

/** A stored DCR client is reused when it covers this flow and its secret has not expired. */
function reusable(stored: Registration, options: EnsureRegistrationOptions): boolean {
  const expiresAt = stored.clientSecretExpiresAt;
  if (expiresAt !== undefined && expiresAt > 0 && expiresAt - SECRET_EXPIRY_MARGIN_MS <= Date.now()) {
    return false;
  }
  const metadata = stored.metadata ?? {};
  // RFC 7591 §2: grant_types defaults to authorization_code when omitted.
  const grants = stringList(metadata['grant_types']) ?? ['authorization_code'];
  if (!requestedGrantTypes(options.grantTypes).every((g) => grants.includes(g))) return false;
  const uris = stringList(metadata['redirect_uris']) ?? [];
  const native = (metadata['application_type'] ?? 'web') === 'native';
  return options.redirectUris.every((needed) => uris.some((have) => redirectCovers(have, needed, native)));
}

/**
 * Whether a registered redirect URI admits `needed`. Exact match, except that a native
 * client's loopback `http` redirect matches on any port (RFC 8252 §7.3): the loopback
 * receiver prefers a stable port per server but falls back to another when it is taken,
 * and one registration serves every server at the same AS.
 */
export function redirectCovers(registered: string, needed: string, native: boolean): boolean {
  if (registered === needed) return true;
  if (!native) return false;
  let a: URL;
  let b: URL;
  try {
    a = new URL(registered);
    b = new URL(needed);
  } catch {
    return false;
  }
  return (
    a.protocol === 'http:' &&
    b.protocol === 'http:' &&
    isLoopbackUrl(a) &&
    a.hostname === b.hostname &&
    a.pathname === b.pathname &&
    a.search === b.search
  );
}
