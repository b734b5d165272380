import type * as oauth from 'oauth4webapi';

import { ErrorCode, isLatchkeyError } from '../errors.js';
import type { AcquiredTokens, AcquireHook, AcquireRequest } from '../lifecycle/acquire.js';
import { type CredentialStore, EventType } from '../store/contract.js';
import { recentEvents } from '../store/recent-events.js';
import { authorizationCodeFlow } from './authorization-code.js';
import { type BrowserOpener, openSystemBrowser } from './browser.js';
import { probeChallenge } from '../oauth/challenge-probe.js';
import { clientContextForConfig, clientCredentialsGrant } from '../oauth/client-credentials.js';
import { deviceAuthorization } from './device-authorization.js';
import { stderrDevicePrompt } from './device-prompt.js';
import { discoverServer, invalidateDiscovery } from '../oauth/discovery.js';
import type { GrantResult } from '../oauth/grants.js';
import { LoginBreaker } from './login-breaker.js';
import { startRedirectReceiver } from './redirect-receiver.js';
import { ensureRegistration, evictRegistration } from '../oauth/registration.js';
import { selectScopes } from '../oauth/scope.js';
import type { BearerChallenge, ClientConfig, DevicePrompt, ServerDiscovery } from '../oauth/types.js';

export type LoginFlow = 'browser' | 'device' | 'client-credentials';

/**
 * Options some identity providers need. Each deviates from the MCP spec for one provider's
 * sake, so all are off by default.
 */
export interface IdpQuirks {
  /** Extra authorization request parameters, e.g. `{ access_type: 'offline', prompt: 'consent' }` (Google). */
  extraAuthorizationParams?: Readonly<Record<string, string>>;
  /** Do not send RFC 8707 `resource` (Microsoft Entra v2 rejects it with AADSTS9010010). */
  omitResource?: boolean;
  /** Ask for `offline_access` when the AS lists it in `scopes_supported` (Okta, Entra, Auth0). */
  offlineAccess?: boolean;
  /** Send this RFC 8707 `resource` instead of the one the server's metadata names. */
  resource?: string;
}

export interface LoginOptions {
  store: CredentialStore;
  /**
   * How to log in. Default `auto`: the browser where one can be shown, else the device flow
   * (over SSH, in containers, with no display). `client-credentials` needs a confidential client.
   */
  flow?: LoginFlow | 'auto';
  /** Pre-registered client, CIMD URL, name. Default: register dynamically as `latchkey`. */
  client?: ClientConfig;
  /** Default: the system browser, started without a shell. */
  openBrowser?: BrowserOpener;
  /** Where human-facing lines go. Default: stderr (never stdout). */
  notify?: (text: string) => void;
  /**
   * Told the device-flow instructions as well as printing them, so a caller that must not
   * block (the proxy) can hand them to its host.
   */
  onDevicePrompt?: (prompt: DevicePrompt, server: string) => void;
  /**
   * Told when the browser could not be started (no BROWSER, no display, a missing program),
   * after the user has been told on `notify`. The login goes on waiting for the redirect, so
   * a caller that must not block (the proxy) can hand the URL to its host.
   */
  onBrowserUnavailable?: (url: string, server: string) => void;
  /** Fixed loopback redirect port. Default: a stable port per server, else any free one. */
  redirectPort?: number;
  /** Redirect URI host name, for pre-registered clients. Default `127.0.0.1`. */
  redirectHost?: '127.0.0.1' | 'localhost';
  /** Redirect URI path, for pre-registered clients. Default `/callback`. */
  redirectPath?: string;
  quirks?: IdpQuirks;
  fetch?: typeof fetch;
  /** How long the user has to finish in the browser or on the other device. Default 300 000 ms. */
  timeoutMs?: number;
  /** Timeout of each request to the AS. Default 30 000 ms. */
  requestTimeoutMs?: number;
  /** Interactive attempts allowed per server in 10 minutes before the breaker opens. Default 5. */
  maxAttempts?: number;
}

/**
 * The acquisition hook that runs a real login: the MCP discovery chain, client
 * registration, then the browser (authorization code + PKCE), device or client-credentials
 * flow. The manager persists what it returns and makes it single-flight across processes.
 */
export function createLoginHook(options: LoginOptions): AcquireHook {
  const breaker = new LoginBreaker(options.maxAttempts ?? 5);
  return async (request) => {
    breaker.admit(request.server);
    try {
      const tokens = await login(options, request);
      breaker.succeeded(request.server);
      return tokens;
    } catch (error) {
      breaker.failed(request.server);
      throw error;
    }
  };
}

async function login(options: LoginOptions, request: AcquireRequest): Promise<AcquiredTokens> {
  const { store } = options;
  const challenge = request.challenge ?? (await probedChallenge(options, request));
  const discovery = await discoverServer(request.server, {
    store,
    fetch: options.fetch,
    challenge,
    preferredIssuer: request.issuer,
    signal: request.signal,
    // The server refused a credential we hold: it may have moved to another AS (SEP-2352,
    // AUTH-28), so the discovery chain is read afresh rather than from the cache.
    maxAgeMs: request.challenge !== undefined && request.reason !== 'no-credential' ? 0 : undefined,
  });
  const as = discovery.authorizationServer;
  const scopes = selectScopes({
    challenge: challengeWithWanted(challenge, request.scopes),
    scopesSupported: discovery.scopesSupported,
    previouslyGranted: request.reason === 'scope' ? request.grantedScopes : undefined,
    asScopesSupported: as.scopes_supported,
    offlineAccess: options.quirks?.offlineAccess,
  });
  const flow = chooseFlow(options);
  let result: { clientId: string; grant: GrantResult; resource: string | undefined };
  try {
    result = await withRegistrationRetry(
      () => runFlow(options, request, as, flow, scopes, discovery),
      store,
      as.issuer,
    );
  } catch (error) {
    // Metadata may have changed under a cached copy; the next attempt rediscovers.
    if (isLatchkeyError(error) && error.code === ErrorCode.DISCOVERY_FAILED) {
      await invalidateDiscovery(store, request.server, as.issuer).catch(() => undefined);
    }
    throw error;
  }
  return {
    issuer: as.issuer,
    clientId: result.clientId,
    requestedAt: result.grant.requestedAt,
    response: result.grant.response,
    ...(scopes === undefined ? {} : { requestedScopes: scopes }),
    owned: true,
    resource: result.resource ?? null,
  };
}

/**
 * Without a server response in hand (`latchkey login`, a proxy starting its own login), ask
 * the server for its 401 challenge: its `resource_metadata` leads discovery and, unless the
 * caller named scopes, its `scope` leads scope selection, as when a request was refused.
 */
async function probedChallenge(
  options: LoginOptions,
  request: AcquireRequest,
): Promise<BearerChallenge | undefined> {
  try {
    const probe = await probeChallenge(request.server, {
      fetch: options.fetch,
      signal: request.signal,
      timeoutMs: options.requestTimeoutMs,
    });
    if (probe.status !== 401 || probe.challenge === undefined) return undefined;
    // Scopes the caller named (`--scope`) are what this login is for; the probe's request
    // was a ping, so its scope only stands in when nobody said what is wanted.
    if (request.scopes === undefined || request.scopes.length === 0) return probe.challenge;
    const { scope: _probeScope, ...rest } = probe.challenge;
    return rest;
  } catch {
    return undefined; // discovery reports an unreachable server, or the cancellation, in its words
  }
}

/** The RFC 8707 resource to send: none (Entra v2), an override, or what the metadata names. */
function resourceFor(options: LoginOptions, discovery: ServerDiscovery): string | undefined {
  if (options.quirks?.omitResource === true) return undefined;
  return options.quirks?.resource ?? discovery.resource;
}

/** One flow run; an `invalid_client` from a stored registration evicts it and registers once more. */
async function withRegistrationRetry<T>(
  run: () => Promise<T>,
  store: CredentialStore,
  issuer: string,
): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const rejected = isLatchkeyError(error) && error.code === ErrorCode.CLIENT_REJECTED;
    if (!rejected || !(await evictRegistration(store, issuer))) throw error;
    return run();
  }
}

async function runFlow(
  options: LoginOptions,
  request: AcquireRequest,
  as: oauth.AuthorizationServer,
  flow: LoginFlow,
  scopes: string[] | undefined,
  discovery: ServerDiscovery,
): Promise<{ clientId: string; grant: GrantResult; resource: string | undefined }> {
  const config = options.client ?? {};
  const resource = resourceFor(options, discovery);
  const scope = scopes?.join(' ');
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  const base = {
    store: options.store,
    server: request.server,
    as,
    config,
    fetch: options.fetch,
    signal: request.signal,
  };

  if (flow === 'client-credentials') {
    const registration = await ensureRegistration({
      ...base,
      redirectUris: [],
      grantTypes: ['client_credentials'],
    });
    const ctx = await clientContextForConfig(as, registration, config, {
      fetch: options.fetch,
      warn: warner(options),
    });
    const grant = await clientCredentialsGrant(ctx, {
      resource,
      scope,
      timeoutMs: requestTimeoutMs,
      signal: request.signal,
      server: request.server,
    });
    return { clientId: registration.clientId, grant, resource };
  }

  if (flow === 'device') {
    const registration = await ensureRegistration({
      ...base,
      redirectUris: [],
      grantTypes: ['urn:ietf:params:oauth:grant-type:device_code'],
      renewPublicClient: request.reason === 'needs-login',
    });
    const ctx = await clientContextForConfig(as, registration, config, {
      fetch: options.fetch,
      warn: warner(options),
    });
    const notify = options.notify;
    const show = stderrDevicePrompt({
      server: request.server,
      ...(notify === undefined ? {} : { write: notify }),
    });
    const grant = await deviceAuthorization({
      ctx,
      resource,
      scope,
      server: request.server,
      signal: request.signal,
      requestTimeoutMs,
      prompt: (prompt) => {
        show(prompt);
        options.onDevicePrompt?.(prompt, request.server);
      },
    });
    return { clientId: registration.clientId, grant, resource };
  }

  const receiver = await startRedirectReceiver({
    server: request.server,
    signal: request.signal,
    // The replaced login's process lets go of the stable port within a fraction of a second;
    // taking it lets its abandoned tab still reach a listener that can say what happened.
    ...(request.replacing === true ? { portWaitMs: 2_000 } : {}),
    ...(options.redirectPort === undefined ? {} : { port: options.redirectPort }),
    ...(options.redirectHost === undefined ? {} : { host: options.redirectHost }),
    ...(options.redirectPath === undefined ? {} : { path: options.redirectPath }),
  });
  try {
    const registeringFrom = Date.now();
    const registration = await ensureRegistration({
      ...base,
      redirectUris: [receiver.redirectUri],
      grantTypes: ['authorization_code'],
      renewPublicClient: request.reason === 'needs-login',
    });
    // The preflight looks for a client the AS has forgotten; one registered a moment ago is
    // known, and the extra authorization request would only be noise at the AS.
    const fresh = registration.method === 'dynamic' && registration.registeredAt >= registeringFrom;
    const ctx = await clientContextForConfig(as, registration, config, {
      fetch: options.fetch,
      warn: warner(options),
    });
    const notify = options.notify ?? ((text: string) => void process.stderr.write(text));
    let waiting = true; // an opener that fails after the login ended has nothing to say
    const grant = await authorizationCodeFlow({
      ctx,
      server: request.server,
      receiver,
      preflight: !fresh,
      resource,
      scope,
      openBrowser: options.openBrowser ?? openSystemBrowser,
      onAuthorizationUrl: (url) =>
        notify(
          `Opening the browser to sign in to ${request.server}.\nIf it does not open, visit:\n\n  ${url}\n\n`,
        ),
      onBrowserUnavailable: (url, error) => {
        if (!waiting) return;
        const why = error instanceof Error ? error.message : 'could not start a browser.';
        notify(`latchkey: ${why} Open this URL yourself to sign in to ${request.server}:\n\n  ${url}\n\n`);
        options.onBrowserUnavailable?.(url, request.server);
      },
      timeoutMs: options.timeoutMs ?? 300_000,
      requestTimeoutMs,
      signal: request.signal,
      ...(request.attempt === undefined ? {} : { attempt: request.attempt }),
      isReplacedAttempt: (attempt) => wasLoginAttempt(options.store, request.server, attempt),
      onIgnoredResponse: (reason, count) =>
        notify(
          reason === 'replaced'
            ? `A sign-in tab of an earlier, replaced login to ${request.server} came back; it was ignored.\n`
            : `Ignored a sign-in response for ${request.server} that does not belong to this login (${count} so far).\n`,
        ),
      fetch: options.fetch,
      ...(options.quirks?.extraAuthorizationParams === undefined
        ? {}
        : { extraParams: options.quirks.extraAuthorizationParams }),
    }).finally(() => (waiting = false));
    return { clientId: registration.clientId, grant, resource };
  } finally {
    receiver.close();
  }
}

/** Events scanned for an earlier login's attempt id; logins are rare, a few hundred is days. */
const ATTEMPT_SCAN = 1000;

/** Whether `attempt` is an earlier login of `server` recorded in the store (so it was replaced or ended). */
async function wasLoginAttempt(store: CredentialStore, server: string, attempt: string): Promise<boolean> {
  const events = await recentEvents(store, ATTEMPT_SCAN, server);
  return events.some((e) => e.type === EventType.LOGIN_STARTED && e.detail?.['attempt'] === attempt);
}

/** Warnings about the AS's answers go where the login's other human-facing lines go. */
function warner(options: LoginOptions): (text: string) => void {
  const notify = options.notify ?? ((text: string) => void process.stderr.write(text));
  return (text) => notify(`warning: ${text}\n`);
}

function challengeWithWanted(
  challenge: BearerChallenge | undefined,
  wanted: readonly string[] | undefined,
): BearerChallenge | undefined {
  if (wanted === undefined || wanted.length === 0) return challenge;
  return { ...challenge, scope: [...new Set([...(challenge?.scope ?? []), ...wanted])] };
}

/** Browser where one can appear; the device flow over SSH, in containers and without a display. */
export function chooseFlow(
  options: Pick<LoginOptions, 'flow' | 'openBrowser'>,
  env = process.env,
): LoginFlow {
  if (options.flow !== undefined && options.flow !== 'auto') return options.flow;
  if (options.openBrowser !== undefined) return 'browser';
  if (env['SSH_CONNECTION'] !== undefined || env['SSH_TTY'] !== undefined) return 'device';
  if (process.platform === 'linux' && !env['DISPLAY'] && !env['WAYLAND_DISPLAY'] && !env['BROWSER'])
    return 'device';
  return 'browser';
}
