import * as oauth from 'oauth4webapi';

import { secrets } from '../credential/redact.js';
import { ErrorCode, LatchkeyError } from '../errors.js';
import { networkText } from '../network-text.js';
import type { CredentialStore, Registration } from '../store/contract.js';
import { boundedFetch, oversizeError, ResponseLimits } from './bounded-fetch.js';
import { isLoopbackUrl } from './loopback.js';
import { classifyTokenFailure } from './token-error.js';
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
  store: CredentialStore;
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
const DEFAULT_TIMEOUT_MS = 30_000;
const REFRESH_TOKEN = 'refresh_token';

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
      nextStep: `register a client at ${options.as.issuer}, then run \`latchkey login ${options.server} --client-id <client-id>\``,
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
  store: CredentialStore,
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
  store: CredentialStore,
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
        nextStep: `register a client at ${as.issuer} and run \`latchkey login ${server} --client-id <client-id>\`, or remove the configured client so latchkey registers itself`,
      },
    );
  }
  if (config.clientMetadataUrl !== undefined && !isClientIdMetadataDocumentUrl(config.clientMetadataUrl)) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      `the client metadata document URL ${JSON.stringify(config.clientMetadataUrl)} is not an https URL with a path.`,
      { server, retryable: false, nextStep: 'use an https URL such as https://example.com/client.json' },
    );
  }
  const method = config.tokenEndpointAuthMethod;
  if ((method === 'client_secret_basic' || method === 'client_secret_post') && !config.clientSecret) {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, `${method} needs a client secret.`, {
      server,
      retryable: false,
      nextStep: 'pass the client secret too, or choose token endpoint auth method `none`',
    });
  }
  if (method === 'private_key_jwt' && config.privateKey === undefined) {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'private_key_jwt needs a private key.', {
      server,
      retryable: false,
      nextStep: 'configure the private key registered for this client',
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

function requestedGrantTypes(grantTypes: readonly string[]): string[] {
  return [...new Set([...grantTypes, REFRESH_TOKEN])];
}

async function registerDynamically(options: EnsureRegistrationOptions): Promise<Registration> {
  const requested = options.applicationType ?? 'native';
  try {
    return await sendRegistration(options, requested);
  } catch (error) {
    // AUTH-26: a native registration refused over its redirect URIs is tried once more as a
    // web client (OIDC DCR's default type), which some servers accept for the same URIs.
    if (requested === 'native' && aboutRedirectUris(error)) {
      try {
        return await sendRegistration(options, 'web');
      } catch (retryError) {
        throw registrationError(options, retryError, 'native, then web');
      }
    }
    throw registrationError(options, error, requested);
  }
}

async function sendRegistration(
  options: EnsureRegistrationOptions,
  applicationType: 'native' | 'web',
): Promise<Registration> {
  const { as } = options;
  const grantTypes = requestedGrantTypes(options.grantTypes);
  // No `scope` metadata: MCP scopes are resource-server scopes, which an AS need not count as
  // its own "supported scope values" (oidc-provider refuses the registration if they are
  // sent), and a client registered without `scope` may request any scope the AS allows.
  const metadata: Record<string, unknown> = {
    application_type: applicationType,
    client_name: options.config.clientName ?? 'latchkey',
    redirect_uris: [...options.redirectUris],
    grant_types: grantTypes,
    response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
    token_endpoint_auth_method: 'none',
  };
  const registeredAt = Date.now();
  const response = await oauth.dynamicClientRegistrationRequest(
    as,
    metadata as Partial<oauth.OmitSymbolProperties<oauth.Client>>,
    httpOptions(as, options),
  );
  const client = await oauth.processDynamicClientRegistrationResponse(
    await withSecretExpiryDefault(response),
  );
  const secret = typeof client.client_secret === 'string' ? client.client_secret : undefined;
  secrets.add(secret);
  // The registration access token (RFC 7592) is a secret and is not kept: an expired or
  // rejected registration is replaced by a new one rather than updated.
  secrets.add(
    typeof client['registration_access_token'] === 'string' ? client['registration_access_token'] : undefined,
  );
  const registration: Registration = {
    issuer: as.issuer,
    clientId: client.client_id,
    tokenEndpointAuthMethod:
      typeof client.token_endpoint_auth_method === 'string' ? client.token_endpoint_auth_method : 'none',
    method: 'dynamic',
    registeredAt,
    metadata: {
      application_type: stringOr(client['application_type'], applicationType),
      redirect_uris: stringList(client['redirect_uris']) ?? metadata['redirect_uris'],
      grant_types: stringList(client['grant_types']) ?? grantTypes,
      client_name: stringOr(client['client_name'], metadata['client_name'] as string),
    },
  };
  if (secret !== undefined) registration.clientSecret = secret;
  const expiresAt = client['client_secret_expires_at'];
  if (typeof expiresAt === 'number' && expiresAt > 0) registration.clientSecretExpiresAt = expiresAt * 1000;
  return registration;
}

/**
 * RFC 7591 §3.2.1 makes `client_secret_expires_at` REQUIRED when a secret is issued, and
 * oauth4webapi rejects a response without it; but registration endpoints in the wild (and the
 * MCP conformance harness) omit it. Absent is read as 0, "does not expire".
 */
async function withSecretExpiryDefault(response: Response): Promise<Response> {
  if (response.status !== 201) return response;
  const text = await response.text();
  let body: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      body = parsed as Record<string, unknown>;
    }
  } catch {
    body = undefined;
  }
  const patch = typeof body?.['client_secret'] === 'string' && body['client_secret_expires_at'] === undefined;
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  headers.delete('content-encoding');
  return new Response(patch ? JSON.stringify({ ...body, client_secret_expires_at: 0 }) : text, {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}

function httpOptions(
  as: oauth.AuthorizationServer,
  options: EnsureRegistrationOptions,
): oauth.DynamicClientRegistrationRequestOptions {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const opts: oauth.DynamicClientRegistrationRequestOptions = {
    signal: options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]),
  };
  opts[oauth.customFetch] = boundedFetch(options.fetch, {
    limit: ResponseLimits.registration,
    what: 'client registration response',
    server: options.server,
  }) as never;
  if (isLoopbackUrl(as.issuer)) opts[oauth.allowInsecureRequests] = true;
  return opts;
}

function aboutRedirectUris(error: unknown): boolean {
  if (!(error instanceof oauth.ResponseBodyError)) return false;
  if (error.error === 'invalid_redirect_uri') return true;
  return error.error === 'invalid_client_metadata' && /redirect_uri/i.test(error.error_description ?? '');
}

function registrationError(options: EnsureRegistrationOptions, error: unknown, tried: string): LatchkeyError {
  const { as, server } = options;
  const manual = `register a client at ${as.issuer} yourself, then run \`latchkey login ${server} --client-id <client-id>\``;
  if (options.signal?.aborted === true) {
    return new LatchkeyError(ErrorCode.CANCELLED, 'the client registration was cancelled.', {
      server,
      retryable: false,
      cause: error,
    });
  }
  const oversize = oversizeError(error, server);
  if (oversize !== undefined) return oversize;
  if (error instanceof oauth.ResponseBodyError && error.status < 500 && error.status !== 429) {
    const description =
      // Typed string by oauth4webapi but copied from the body as sent: 0 or {} arrive too.
      typeof error.error_description !== 'string' ? '' : `: ${quote(error.error_description)}`;
    const redirect = error.error === 'invalid_redirect_uri' || aboutRedirectUris(error);
    return new LatchkeyError(
      ErrorCode.CLIENT_REJECTED,
      `the authorization server ${as.issuer} refused to register latchkey (${safeCode(error.error)}${description}; application_type ${tried}${redirect ? `, redirect URIs ${JSON.stringify(options.redirectUris)}` : ''}).`,
      { server, retryable: false, nextStep: manual, cause: error },
    );
  }
  if (error instanceof oauth.WWWAuthenticateChallengeError) {
    return new LatchkeyError(
      ErrorCode.CLIENT_REJECTED,
      `the authorization server ${as.issuer} requires authorization to register clients (HTTP ${error.status}).`,
      { server, retryable: false, nextStep: manual, cause: error },
    );
  }
  const failure = classifyTokenFailure(error);
  const reason = failure.kind === 'transient' ? failure.reason : failure.error;
  return new LatchkeyError(
    ErrorCode.REFRESH_TRANSIENT,
    `registering latchkey at ${as.issuer} failed temporarily (${reason}).`,
    { server, retryable: true, nextStep: 'retry in a moment', cause: error },
  );
}

function stringList(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? (value as string[]) : undefined;
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}

/** Server-supplied text, quoted (neutralizes newlines and control characters) and bounded. */
function quote(text: string): string {
  return JSON.stringify(networkText(text, { maxLength: 200 }));
}

/** OAuth error codes are a restricted charset; anything else is not echoed back. */
function safeCode(code: string): string {
  return /^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$/.test(code) ? code : 'an invalid error code';
}
