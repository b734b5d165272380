/**
 * A real OAuth authorization server for `latchkey demo`: oidc-provider 9 in-process on a plain
 * node:http server on 127.0.0.1. It reproduces what latchkey has to survive (short-lived
 * access tokens, refresh-token rotation with reuse detection that revokes the grant, RFC 7009
 * revocation, RFC 8628 device flow, RFC 7591 registration, RFC 8707 resource indicators)
 * and counts what it actually saw. latchkey's tests build on it (test/harness/): they pass
 * their own `storage` and a changeable `accessTokenTtl` to revoke grants and shorten tokens.
 */
import { createServer } from 'node:http';

import type { ProviderContext, ProviderMiddleware } from 'oidc-provider';

import { Counters } from './counters.js';
import { loadOidcProvider } from './load-provider.js';
import { closeServer, listenOnLoopback, trackSockets } from './listen.js';
import { ProviderStorage } from './memory-adapter.js';
import {
  type AuthorizationServerOptions,
  type ConfidentialClient,
  DEVICE_CODE_GRANT,
  LOOPBACK_REDIRECT_URI,
  providerConfiguration,
  type ProviderSettings,
  providerSettings,
  PUBLIC_CLIENT_ID,
} from './provider-config.js';

export type {
  AuthorizationServerFront,
  AuthorizationServerOptions,
  ConfidentialClient,
} from './provider-config.js';

export interface IntrospectionResult {
  active: boolean;
  sub?: string;
  aud?: string | string[];
  scope?: string;
  client_id?: string;
  exp?: number;
  iat?: number;
  iss?: string;
  token_type?: string;
  [claim: string]: unknown;
}

export interface AuthorizationServer {
  /** Issuer identifier; the proxy's origin when fronted. */
  readonly issuer: string;
  /** Where the AS really listens (bypasses any proxy; used by introspect()). */
  readonly directUrl: string;
  /** The public native client `mcp-test-client` (PKCE, any loopback port). */
  readonly clientId: string;
  /** Its registered redirect URI; any port on 127.0.0.1 is accepted (RFC 8252 7.3). */
  readonly redirectUri: string;
  /** Confidential client allowed the client_credentials grant (client_secret_basic). */
  readonly serviceClient: ConfidentialClient;
  /** Confidential client the MCP server uses for introspection (client_secret_basic). */
  readonly resourceServerClient: ConfidentialClient;
  /** The resource scopes, space separated (what to request by default). */
  readonly scope: string;
  readonly counters: Counters;
  /** Accept another RFC 8707 resource (the MCP server's URL is only known once it listens). */
  addResource(uri: string): void;
  /** RFC 7662 introspection at the AS directly, as the resource server would do it. */
  introspect(token: string): Promise<IntrospectionResult>;
  close(): Promise<void>;
}

export { LOOPBACK_REDIRECT_URI, positiveInteger, PUBLIC_CLIENT_ID } from './provider-config.js';

export async function startAuthorizationServer(
  options: AuthorizationServerOptions = {},
): Promise<AuthorizationServer> {
  const { Provider, errors } = await loadOidcProvider();
  const settings = providerSettings(options);
  const counters = new Counters();
  const storage = options.storage ?? new ProviderStorage();

  // Listen first: without a front, the issuer is derived from the bound port.
  const server = createServer();
  const sockets = trackSockets(server);
  const directUrl = await listenOnLoopback(server);
  const issuer = options.frontedBy?.origin ?? directUrl;

  const provider = new Provider(issuer, providerConfiguration(settings, storage, errors));
  for (const grant of options.extraGrants ?? [])
    provider.registerGrantType(grant.type, grant.handler, [...grant.params]);
  provider.use(countingMiddleware(settings, counters));
  server.on('request', provider.callback());
  options.frontedBy?.setTarget(directUrl);

  const { serviceClient, resourceServerClient, resources } = settings;
  return {
    issuer,
    directUrl,
    clientId: PUBLIC_CLIENT_ID,
    redirectUri: LOOPBACK_REDIRECT_URI,
    serviceClient,
    resourceServerClient,
    scope: settings.scope,
    counters,
    addResource(uri) {
      resources.add(uri);
    },
    introspect: (token) => introspect(directUrl, resourceServerClient, token),
    close: () => closeServer(server, sockets),
  };
}

/**
 * Count every oidc-provider route on the way out, after it decided, so the outcome is the
 * real one; and patch the two responses the options change (metadata without the refresh
 * grant, a device `interval`).
 */
function countingMiddleware(settings: ProviderSettings, counters: Counters): ProviderMiddleware {
  return async (ctx, next) => {
    try {
      await next();
      if (!settings.refreshTokenGrant) withoutRefreshGrant(ctx.body);
    } finally {
      observe(ctx, settings, counters);
    }
  };
}

function observe(ctx: ProviderContext, settings: ProviderSettings, counters: Counters): void {
  const oidc = ctx.oidc;
  const route = oidc?.route;
  if (route === undefined) return;
  const kind = route === 'token' ? grantKind(oidc?.params?.['grant_type']) : route;
  const body = ctx.body;
  const error =
    typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string'
      ? (body as { error: string }).error
      : undefined;
  counters.record(kind, ctx.status < 400 ? 'ok' : (error ?? `http_${ctx.status}`));
  if (route === 'device_authorization' && ctx.status === 200 && typeof body === 'object' && body !== null) {
    (body as Record<string, unknown>)['interval'] ??= settings.deviceFlowInterval;
  }
}

/** RFC 7662 at the AS itself (never through a front), authenticated as the resource server. */
async function introspect(
  directUrl: string,
  client: ConfidentialClient,
  token: string,
): Promise<IntrospectionResult> {
  const basic = Buffer.from(
    `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`,
  ).toString('base64');
  const response = await fetch(`${directUrl}/token/introspection`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }),
  });
  if (!response.ok) throw new Error(`introspection failed: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()) as IntrospectionResult;
}

/** Grant types as counter kinds; the device grant's URN is shortened to `device_code`. */
function grantKind(grantType: unknown): string {
  if (typeof grantType !== 'string') return 'token';
  return grantType === DEVICE_CODE_GRANT ? 'device_code' : grantType;
}

/** Drop refresh_token from a metadata document's grant_types_supported. */
function withoutRefreshGrant(body: unknown): void {
  if (typeof body !== 'object' || body === null) return;
  const record = body as Record<string, unknown>;
  const grants = record['grant_types_supported'];
  if (Array.isArray(grants)) record['grant_types_supported'] = grants.filter((g) => g !== 'refresh_token');
}
