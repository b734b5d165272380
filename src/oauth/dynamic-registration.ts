import * as oauth from 'oauth4webapi';

import { secrets } from '../redact.js';
import { ErrorCode, LatchkeyError } from '../errors.js';
import { loginAction } from '../next-action.js';
import type { Registration } from '../store/contract.js';
import { boundedFetch, ResponseLimits } from './bounded-fetch.js';
import { isLoopbackUrl } from './loopback.js';
import type { EnsureRegistrationOptions } from './registration.js';
import { asRequestError } from './oauth-errors.js';

/**
 * RFC 7591 dynamic client registration (AUTH-24..26): the request latchkey sends, the answer
 * it accepts, and the error it gives when the AS refuses. registration.ts decides when to
 * register; this file only does it.
 */

const DEFAULT_TIMEOUT_MS = 30_000;
const REFRESH_TOKEN = 'refresh_token';

export function requestedGrantTypes(grantTypes: readonly string[]): string[] {
  return [...new Set([...grantTypes, REFRESH_TOKEN])];
}

export async function registerDynamically(options: EnsureRegistrationOptions): Promise<Registration> {
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
  const request = {
    server,
    what: `registering latchkey at ${as.issuer} failed temporarily`,
    cancelled: 'the client registration was cancelled.',
    signal: options.signal,
  };
  return asRequestError(error, request, (refused) => {
    const next = loginAction(server, { needsClientId: true, detail: `its issuer is ${as.issuer}` });
    if (refused.cause instanceof oauth.WWWAuthenticateChallengeError) {
      return new LatchkeyError(
        ErrorCode.CLIENT_REJECTED,
        `the authorization server ${as.issuer} requires authorization to register clients (HTTP ${refused.cause.status}).`,
        { server, retryable: false, next, cause: refused.cause },
      );
    }
    const redirect = aboutRedirectUris(refused.cause)
      ? `, redirect URIs ${JSON.stringify(options.redirectUris)}`
      : '';
    return new LatchkeyError(
      ErrorCode.CLIENT_REJECTED,
      `the authorization server ${as.issuer} refused to register latchkey (${refused.code}${refused.description}; application_type ${tried}${redirect}).`,
      { server, retryable: false, next, cause: refused.cause },
    );
  });
}

export function stringList(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? (value as string[]) : undefined;
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}
