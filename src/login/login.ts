import { ErrorCode, isLatchkeyError } from '../errors.js';
import type { AcquiredTokens, AcquireHook, AcquireRequest } from '../lifecycle/acquire.js';
import { probeChallenge } from '../oauth/challenge-probe.js';
import { discoverServer, invalidateDiscovery } from '../oauth/discovery.js';
import { wantsDPoP } from '../oauth/dpop.js';
import { evictRegistration } from '../oauth/registration.js';
import { selectScopes } from '../oauth/scope.js';
import type { BearerChallenge, ServerDiscovery } from '../oauth/types.js';
import type { CredentialStore } from '../store/contract.js';
import { browserLogin } from './browser-login.js';
import { clientCredentialsLogin } from './client-credentials.js';
import { canonicalServer } from '../credential/key.js';
import { deviceLogin } from './device-login.js';
import type { IdpSource } from './enterprise.js';
import { idpLogin } from './idp-session.js';
import { enterpriseEligible, enterpriseLogin } from './enterprise.js';
import { LoginBreaker } from './login-breaker.js';
import { workloadIdentityLogin } from './workload-identity.js';
import type { LoginFlow, LoginOptions } from './options.js';
import type { FlowResult, FlowRun, LoginStrategy } from './strategy.js';

export type { IdpQuirks, LoginFlow, LoginOptions } from './options.js';

/** One strategy per flow; `chooseFlow` picks the row. */
const STRATEGIES: Readonly<Record<LoginFlow, LoginStrategy>> = {
  browser: browserLogin,
  device: deviceLogin,
  'client-credentials': clientCredentialsLogin,
  'workload-identity': workloadIdentityLogin,
  enterprise: enterpriseLogin,
};

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

async function login(given: LoginOptions, request: AcquireRequest): Promise<AcquiredTokens> {
  const options = await withIdp(given);
  if (isIdpServer(options, request.server)) {
    const flow = chooseFlow(options);
    return idpLogin(options, request, STRATEGIES, flow === 'device' ? 'device' : 'browser');
  }
  const challenge = request.challenge ?? (await probedChallenge(options, request));
  const discovery = await discoverFor(options, request, challenge);
  const as = discovery.authorizationServer;
  const scopes = selectScopes({
    challenge: challengeWithWanted(challenge, request.scopes),
    scopesSupported: discovery.scopesSupported,
    previouslyGranted: request.reason === 'scope' ? request.grantedScopes : undefined,
    asScopesSupported: as.scopes_supported,
    offlineAccess: options.quirks?.offlineAccess,
  });
  const run = flowRun(options, request, discovery, challenge, scopes);
  const flow = explicitFlow(options) ?? (enterpriseEligible(run) ? 'enterprise' : chooseFlow(options));
  const result = await runFlow(run, flow);
  return {
    issuer: as.issuer,
    clientId: result.clientId,
    requestedAt: result.grant.requestedAt,
    response: result.grant.response,
    ...(scopes === undefined ? {} : { requestedScopes: scopes }),
    owned: true,
    resource: result.resource ?? null,
    ...(result.idp === undefined ? {} : { idp: result.idp }),
  };
}

function discoverFor(
  options: LoginOptions,
  request: AcquireRequest,
  challenge: BearerChallenge | undefined,
): Promise<ServerDiscovery> {
  return discoverServer(request.server, {
    store: options.store,
    fetch: options.fetch,
    challenge,
    preferredIssuer: request.issuer,
    signal: request.signal,
    warn: options.warn,
    // The server refused a credential we hold: it may have moved to another AS (SEP-2352,
    // AUTH-28), so the discovery chain is read afresh rather than from the cache.
    maxAgeMs: request.challenge !== undefined && request.reason !== 'no-credential' ? 0 : undefined,
  });
}

/** Everything a flow needs once the server is discovered and the scopes are chosen. */
function flowRun(
  options: LoginOptions,
  request: AcquireRequest,
  discovery: ServerDiscovery,
  challenge: BearerChallenge | undefined,
  scopes: readonly string[] | undefined,
): FlowRun {
  return {
    options,
    request,
    as: discovery.authorizationServer,
    scope: scopes?.join(' '),
    resource: resourceFor(options, discovery),
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    dpop: wantsDPoP(options.client, challenge, discovery.resourceMetadata),
    notify: options.notify ?? ((text: string) => void process.stderr.write(text)),
  };
}

async function runFlow(run: FlowRun, flow: LoginFlow): Promise<FlowResult> {
  const { store } = run.options;
  const issuer = run.as.issuer;
  try {
    // A refused workload JWT is final (SEP-1933): no second token request.
    return flow === 'workload-identity'
      ? await STRATEGIES[flow](run)
      : await withRegistrationRetry(() => STRATEGIES[flow](run), store, issuer);
  } catch (error) {
    // Metadata may have changed under a cached copy; the next attempt rediscovers.
    if (isLatchkeyError(error) && error.code === ErrorCode.DISCOVERY_FAILED) {
      await invalidateDiscovery(store, run.request.server, issuer).catch(() => undefined);
    }
    throw error;
  }
}

/** The options with `idp` resolved, when it is asked for at each login. */
async function withIdp(options: LoginOptions): Promise<LoginOptions & { idp?: IdpSource }> {
  if (typeof options.idp !== 'function') return options as LoginOptions & { idp?: IdpSource };
  const { idp: resolve, ...rest } = options;
  const idp = await resolve();
  return idp === undefined ? rest : { ...rest, idp };
}

/** The login is the IdP session's own (`login --idp`, or its renewal), not a server's. */
function isIdpServer(options: { idpLogin?: string; idp?: IdpSource }, server: string): boolean {
  const issuers = [options.idpLogin, options.idp?.issuer].filter((i) => i !== undefined);
  return issuers.some((issuer) => canonicalServer(issuer) === server);
}

/** The flow the caller named, if it named one; `auto` leaves the choice to the server's AS. */
function explicitFlow(options: Pick<LoginOptions, 'flow'>): LoginFlow | undefined {
  return options.flow === undefined || options.flow === 'auto' ? undefined : options.flow;
}

/**
 * Without a server response in hand (an explicit login, a proxy starting its own login), ask
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
