/**
 * The oidc-provider configuration behind the demo AS, built from its options in named parts:
 * the pre-registered clients, the token policy (lifetimes, rotation, reuse) and the feature
 * switches. Kept apart from the server's start-up so each part reads as one decision.
 */
import { randomBytes } from 'node:crypto';

import type { ProviderContext } from 'oidc-provider';

import type { OidcProviderModule } from './load-provider.js';
import type { ProviderStorage } from './memory-adapter.js';

/** Anything that can stand in front of the AS; the fault proxy is one. */
export interface AuthorizationServerFront {
  /** Becomes the issuer: every URL a client learns from metadata points here. */
  readonly origin: string;
  /** Called with the AS's real origin once it listens. */
  setTarget(origin: string): void;
}

export interface AuthorizationServerOptions {
  /**
   * Access-token lifetime in whole seconds (>= 1). Default 10. A function is asked at every
   * issue, so the lifetime can change while the server runs.
   */
  accessTokenTtl?: number | (() => number);
  /** Refresh-token lifetime in seconds, renewed on every rotation. Default 3600. */
  refreshTokenTtl?: number;
  /** Rotate the refresh token on every use. Default true. */
  rotateRefreshToken?: boolean;
  /**
   * What a reused (already rotated) refresh token does. Default true: invalid_grant and the
   * whole grant is revoked, successor tokens included (oidc-provider's native behaviour).
   * False: invalid_grant only, the grant survives, as at an AS without reuse detection
   * (Entra) or one within its grace window.
   */
  revokeGrantOnReuse?: boolean;
  /**
   * Issue a refresh token with every code/device grant the client may refresh, without the
   * offline_access + prompt=consent dance oidc-provider requires by default. Default true.
   */
  issueRefreshToken?: boolean;
  /**
   * Offer the refresh_token grant at all. Default true. False: no refresh tokens are issued
   * and the metadata's grant_types_supported leaves it out, as at an AS configured without it.
   */
  refreshTokenGrant?: boolean;
  /** RFC 7009 revocation endpoint. Default true. */
  revocation?: boolean;
  /** RFC 7662 introspection endpoint (introspect() and the MCP server need it). Default true. */
  introspection?: boolean;
  /** RFC 8628 device authorization grant. Default true. */
  deviceFlow?: boolean;
  /**
   * `interval` (seconds) added to device authorization responses. oidc-provider sends none,
   * which makes clients poll every 5 s; default 1 keeps device tests short.
   */
  deviceFlowInterval?: number;
  /**
   * DPoP (RFC 9449): advertise `dpop_signing_alg_values_supported` and bind tokens to the
   * client's proof key; `'nonce'` also answers proofs without the AS's nonce with
   * `use_dpop_nonce`. Default false: plain bearer tokens, as most ASes issue.
   */
  dpop?: boolean | 'nonce';
  /** RFC 7591 open dynamic client registration at /reg. Default true. */
  registration?: boolean;
  /** client_credentials grant (for the confidential client). Default true. */
  clientCredentials?: boolean;
  /** RFC 8707 resource indicators accepted from the start; addResource() adds more. Default none. */
  resources?: readonly string[];
  /** Scopes of every resource. Default ['mcp:tools']. */
  scopes?: readonly string[];
  /**
   * Put the AS behind a proxy: the issuer and all metadata URLs become the proxy's origin and
   * the proxy is pointed at the AS. Clients then reach discovery, token and revocation only
   * through it. (Endpoint URLs are built from the request's Host header, which the proxy
   * passes through unchanged, and the issuer is configured, so both name the proxy.)
   */
  frontedBy?: AuthorizationServerFront;
  /** Extra client metadata records (oidc-provider format) to pre-register. */
  clients?: readonly Record<string, unknown>[];
  /** Where grants, tokens and clients live. Default: a new one. Pass one to inspect or revoke. */
  storage?: ProviderStorage;
  /**
   * Grant types beyond oidc-provider's own (RFC 8693 token exchange, RFC 7523 JWT bearer),
   * registered with `registerGrantType`; a client must list a type in its `grant_types`.
   * Default none.
   */
  extraGrants?: readonly ExtraGrant[];
}

/** One custom grant: oidc-provider authenticates the client, then calls `handler`. */
export interface ExtraGrant {
  readonly type: string;
  /** The form parameters the handler reads (oidc-provider drops any other). */
  readonly params: readonly string[];
  /** Sets `ctx.body` (the token response) or throws an oidc-provider error. */
  readonly handler: (ctx: ProviderContext, next: () => Promise<void>) => Promise<void>;
}

export interface ConfidentialClient {
  readonly clientId: string;
  readonly clientSecret: string;
}

export const PUBLIC_CLIENT_ID = 'mcp-test-client';
export const LOOPBACK_REDIRECT_URI = 'http://127.0.0.1/callback';
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

type ProviderErrors = OidcProviderModule['errors'];

/** The options with their defaults applied, validated once at start. */
export interface ProviderSettings {
  readonly options: AuthorizationServerOptions;
  /** Asked at every issue, so a test can change the lifetime while the server runs. */
  readonly accessTokenTtl: () => number;
  readonly refreshTokenTtl: number;
  readonly revokeGrantOnReuse: boolean;
  readonly refreshTokenGrant: boolean;
  readonly issueRefreshToken: boolean;
  readonly deviceFlowInterval: number;
  /** Grows at run time (addResource): the MCP server's URL is known only once it listens. */
  readonly resources: Set<string>;
  readonly scope: string;
  readonly serviceClient: ConfidentialClient;
  readonly resourceServerClient: ConfidentialClient;
}

export function providerSettings(options: AuthorizationServerOptions): ProviderSettings {
  const ttlOption = options.accessTokenTtl ?? 10;
  const accessTokenTtl = (): number =>
    positiveInteger(typeof ttlOption === 'function' ? ttlOption() : ttlOption, 'accessTokenTtl');
  accessTokenTtl(); // a bad lifetime fails here, not at the first token request
  const refreshTokenGrant = options.refreshTokenGrant ?? true;
  return {
    options,
    accessTokenTtl,
    refreshTokenTtl: positiveInteger(options.refreshTokenTtl ?? 3600, 'refreshTokenTtl'),
    revokeGrantOnReuse: options.revokeGrantOnReuse ?? true,
    refreshTokenGrant,
    issueRefreshToken: (options.issueRefreshToken ?? true) && refreshTokenGrant,
    deviceFlowInterval: options.deviceFlowInterval ?? 1,
    resources: new Set(options.resources ?? []),
    scope: (options.scopes ?? ['mcp:tools']).join(' '),
    serviceClient: { clientId: 'mcp-test-service', clientSecret: randomBytes(16).toString('hex') },
    resourceServerClient: {
      clientId: 'mcp-test-resource-server',
      clientSecret: randomBytes(16).toString('hex'),
    },
  };
}

/** oidc-provider (and its resource-server info) takes whole seconds. */
export function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be a whole number of seconds >= 1`);
  return value;
}

export function providerConfiguration(
  settings: ProviderSettings,
  storage: ProviderStorage,
  errors: ProviderErrors,
): object {
  return {
    adapter: storage.adapterFactory,
    clients: registeredClients(settings),
    cookies: { keys: [randomBytes(16).toString('hex')] },
    scopes: ['openid', 'offline_access'],
    // Any login name is a valid account whose subject is that name.
    findAccount: (_ctx: ProviderContext, sub: string) => ({ accountId: sub, claims: () => ({ sub }) }),
    ...tokenPolicy(settings, errors),
    features: providerFeatures(settings, errors),
  };
}

function registeredClients(settings: ProviderSettings): Record<string, unknown>[] {
  const { serviceClient, resourceServerClient } = settings;
  return [
    {
      client_id: PUBLIC_CLIENT_ID,
      token_endpoint_auth_method: 'none',
      // native + http://127.0.0.1: oidc-provider ignores the port when matching (RFC 8252).
      application_type: 'native',
      redirect_uris: [LOOPBACK_REDIRECT_URI],
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT],
    },
    {
      client_id: serviceClient.clientId,
      client_secret: serviceClient.clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: [],
      response_types: [],
      grant_types: ['client_credentials'],
    },
    {
      client_id: resourceServerClient.clientId,
      client_secret: resourceServerClient.clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: [],
      response_types: [],
      grant_types: [],
    },
    ...(settings.options.clients ?? []),
  ];
}

/** Which grants get refresh tokens, how long everything lives, and what a reused refresh token costs. */
function tokenPolicy(settings: ProviderSettings, errors: ProviderErrors): object {
  const { accessTokenTtl, refreshTokenTtl, revokeGrantOnReuse } = settings;
  return {
    issueRefreshToken: (_ctx: ProviderContext, client: { grantTypeAllowed(type: string): boolean }) =>
      settings.issueRefreshToken && client.grantTypeAllowed('refresh_token'),
    // Refresh tokens outlive the AS's browser session, as offline access does.
    expiresWithSession: () => false,
    rotateRefreshToken: settings.options.rotateRefreshToken ?? true,
    revokeGrantPolicy: (ctx: ProviderContext) => {
      const oidc = ctx.oidc;
      // oidc-provider's default: revoking an access token alone leaves the grant alone.
      if (oidc?.route === 'revocation' && oidc.entities['AccessToken'] !== undefined) return false;
      // The refresh grant calls this only when a consumed refresh token is presented. Failing
      // here, before any token is revoked, gives invalid_grant while the grant lives on.
      if (!revokeGrantOnReuse && oidc?.route === 'token' && oidc.params?.['grant_type'] === 'refresh_token') {
        throw new errors.InvalidGrant('refresh token already used');
      }
      return true;
    },
    ttl: {
      AccessToken: accessTokenTtl,
      ClientCredentials: accessTokenTtl,
      RefreshToken: () => refreshTokenTtl,
      Grant: () => Math.max(refreshTokenTtl, 14 * 24 * 3600),
      AuthorizationCode: 60,
      DeviceCode: 600,
      IdToken: 3600,
      Interaction: 600,
      Session: 24 * 3600,
    },
  };
}

/** oidc-provider's DPoP switch; nonces need a secret to derive them from. */
function dpopFeature(dpop: boolean | 'nonce'): object {
  if (dpop === false) return { enabled: false };
  if (dpop === true) return { enabled: true };
  return { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true };
}

function providerFeatures(settings: ProviderSettings, errors: ProviderErrors): object {
  const { options, resources } = settings;
  return {
    devInteractions: { enabled: true },
    dPoP: dpopFeature(options.dpop ?? false),
    revocation: {
      enabled: options.revocation ?? true,
      allowedPolicy: (_ctx: ProviderContext, client: { clientId: string }, token: { clientId?: string }) =>
        token.clientId === client.clientId,
    },
    introspection: { enabled: options.introspection ?? true, allowedPolicy: () => true },
    deviceFlow: {
      enabled: options.deviceFlow ?? true,
      userCodeInputSource: renderPage('Enter code'),
      userCodeConfirmSource: renderPage('Confirm device'),
      successSource: (ctx: { body: unknown }) => {
        ctx.body = '<!DOCTYPE html><html><body><h1>Sign-in Success</h1></body></html>';
      },
    },
    registration: { enabled: options.registration ?? true },
    clientCredentials: { enabled: options.clientCredentials ?? true },
    resourceIndicators: {
      enabled: true,
      // Without a resource parameter: the only resource, if there is exactly one.
      defaultResource: (_ctx: ProviderContext, _client: unknown, oneOf?: string[]) =>
        oneOf ?? (resources.size === 1 ? [...resources][0] : undefined),
      // Refresh and code redemption without `resource` keep the granted resource.
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx: ProviderContext, indicator: string) => {
        if (!resources.has(indicator)) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        return {
          scope: settings.scope,
          audience: indicator,
          accessTokenTTL: settings.accessTokenTtl(),
          accessTokenFormat: 'opaque',
        };
      },
    },
  };
}

/**
 * Plain device-flow pages: just oidc-provider's form, no styling, so the login driver reads
 * exactly the fields a browser would submit (the defaults also pull in web fonts).
 */
function renderPage(title: string) {
  return (ctx: { body: unknown }, form: string) => {
    ctx.body = `<!DOCTYPE html><html><head><title>${title}</title></head><body>${form}</body></html>`;
  };
}
