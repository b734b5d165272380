import * as oauth from 'oauth4webapi';

import { ErrorCode, LatchkeyError } from '../errors.js';
import type { DiscoveryCache, DPoPKeyTable, Registration, RegistrationCache } from '../store/contract.js';
import { boundedFetch, ResponseLimits } from './bounded-fetch.js';
import { authorizationServerMetadata } from './discovery.js';
import { asSupportsDPoP, dpopFetch, dpopKeysOf, storeSigner } from './dpop.js';
import { isLoopbackUrl } from './loopback.js';

/** Everything needed to talk to one authorization server's endpoints as one client. */
export interface ClientContext {
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  clientAuth: oauth.ClientAuth;
  /** The MCP server the context serves, when known; named by size-limit errors. */
  server?: string | undefined;
  /**
   * oauth4webapi request options: timeout signal, custom fetch, loopback http allowance.
   * `dpop: false` leaves the DPoP proof off (a refresh of a bearer credential stays bearer).
   */
  requestOptions(signal?: AbortSignal, dpop?: boolean): oauth.TokenEndpointRequestOptions;
  /** Told what was wrong but not fatal in an AS answer (an ID token that was dropped). */
  warn?: ((text: string) => void) | undefined;
  /**
   * The RFC 7638 thumbprint of the DPoP key when this context binds tokens to it, for the
   * authorization request's `dpop_jkt` (RFC 9449 §10); undefined for bearer tokens.
   */
  dpopThumbprint?: (() => Promise<string | undefined>) | undefined;
}

export interface ClientContextOptions {
  fetch?: typeof fetch | undefined;
  /** The MCP server the requests are for, named by size-limit errors. */
  server?: string | undefined;
  /** Where non-fatal problems with the AS's answers go. Default: nowhere. */
  warn?: ((text: string) => void) | undefined;
  /**
   * Where the DPoP key lives. With it, and an AS that lists ES256 in
   * `dpop_signing_alg_values_supported`, every request carries a proof (dpop.ts) and the
   * tokens come back bound to the key. Default: loadClientContext uses its store; without
   * one, tokens are plain bearer tokens.
   */
  dpopKeys?: DPoPKeyTable | undefined;
}

/**
 * Build the context for `issuer` from what the store holds: the AS metadata cached by
 * discovery and the registration made at that AS. Metadata that is missing or older than a
 * day is fetched in the AUTH-12/13 order, validated (issuer echo, https endpoints) and cached;
 * stale metadata is still used while a refetch fails transiently (see discovery.ts).
 */
export async function loadClientContext(
  store: RegistrationCache & DiscoveryCache,
  server: string,
  issuer: string,
  clientId: string,
  options: ClientContextOptions = {},
): Promise<ClientContext> {
  const as = await authorizationServerMetadata(store, issuer, { server, fetch: options.fetch });
  const registration = await store.getRegistration(issuer);
  const reg: Registration =
    registration !== undefined && registration.clientId === clientId
      ? registration
      : { issuer, clientId, tokenEndpointAuthMethod: 'none', method: 'pre-registered', registeredAt: 0 };
  return buildContext(as, reg, { server, dpopKeys: dpopKeysOf(store), ...options });
}

export function buildContext(
  as: oauth.AuthorizationServer,
  reg: Registration,
  options: ClientContextOptions,
): ClientContext {
  const client: oauth.Client = {
    client_id: reg.clientId,
    token_endpoint_auth_method: reg.tokenEndpointAuthMethod,
  };
  const insecure = isLoopbackUrl(as.issuer);
  // Token, device authorization and revocation answers (errors too) are read with a cap.
  const keys = options.dpopKeys;
  const base = options.fetch;
  const limits = {
    limit: ResponseLimits.endpoint,
    what: 'authorization server response',
    server: options.server,
  };
  const capped = boundedFetch(base, limits);
  const bound =
    keys !== undefined && asSupportsDPoP(as)
      ? boundedFetch(
          dpopFetch((input, init) => (base ?? globalThis.fetch)(input, init), keys),
          limits,
        )
      : capped;
  return {
    as,
    client,
    server: options.server,
    warn: options.warn,
    clientAuth: clientAuthentication(reg),
    dpopThumbprint: () =>
      bound === capped || keys === undefined
        ? Promise.resolve(undefined)
        : storeSigner(keys).then((signer) => signer.thumbprint),
    requestOptions: (signal, dpop = true) => {
      const opts: oauth.TokenEndpointRequestOptions = {};
      if (signal !== undefined) opts.signal = signal;
      opts[oauth.customFetch] = asCustomFetch(dpop ? bound : capped);
      if (insecure) opts[oauth.allowInsecureRequests] = true;
      return opts;
    },
  };
}

function clientAuthentication(reg: Registration): oauth.ClientAuth {
  const secret = reg.clientSecret;
  switch (reg.tokenEndpointAuthMethod) {
    case 'client_secret_basic':
      return clientSecretBasic(requireSecret(reg, secret));
    case 'client_secret_post':
      return oauth.ClientSecretPost(requireSecret(reg, secret));
    default:
      return oauth.None();
  }
}

/**
 * client_secret_basic (RFC 6749 §2.3.1): id and secret form-urlencoded, joined, Base64. Unlike
 * oauth4webapi's, RFC 3986 unreserved characters (`-._~`) are left as they are: servers that
 * decode read both spellings alike, and servers that compare the raw value (the MCP
 * conformance harness among them) must see `my-client`, not `my%2Dclient`.
 */
function clientSecretBasic(secret: string): oauth.ClientAuth {
  return (_as, client, _body, headers) => {
    const credentials = `${formEncode(client.client_id)}:${formEncode(secret)}`;
    headers.set('authorization', `Basic ${Buffer.from(credentials).toString('base64')}`);
  };
}

function formEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function requireSecret(reg: Registration, secret: string | undefined): string {
  if (secret !== undefined) return secret;
  throw new LatchkeyError(
    ErrorCode.CLIENT_REJECTED,
    `the registration at ${reg.issuer} uses ${reg.tokenEndpointAuthMethod} but holds no client secret.`,
    {
      retryable: false,
      next: { kind: 'login', again: true, detail: 'a new login registers the client again' },
    },
  );
}

/**
 * oauth4webapi declares its fetch hook narrower than the global `fetch` type under
 * exactOptionalPropertyTypes; every call it makes is a valid `fetch` call.
 */
function asCustomFetch(fn: typeof fetch): never {
  return fn as never;
}
