import { createHash } from 'node:crypto';

import * as oauth from 'oauth4webapi';

import { authorizationEndpoint } from '../login/authorization-code.js';
import { probeChallenge } from '../oauth/challenge-probe.js';
import { discoverServer } from '../oauth/discovery.js';
import { ensureRegistration } from '../oauth/registration.js';
import { selectScopes } from '../oauth/scope.js';
import type { BearerChallenge, ServerDiscovery } from '../oauth/types.js';
import type { ConnectAttempt } from '../store/serve-contract.js';
import { clientConfigOf, type UpstreamConfig } from './config.js';
import { callbackUrl, type ServeContext } from './context.js';
import { HttpError } from './http.js';

/** Default lifetime of a connect link: long enough to sign in, short enough to be useless stolen later. */
export const CONNECT_TTL_MS = 10 * 60 * 1000;

export interface ConnectStart {
  authorizationUrl: string;
  expiresAt: number;
}

/** The store's key for an attempt: the state's digest, so the table does not hold live states. */
export function attemptId(state: string): string {
  return createHash('sha256').update(state, 'utf8').digest('hex');
}

/**
 * Start the web login of `subject` to `upstream`: discovery, a client registered for the
 * public callback, PKCE, and a single-use attempt in the store that binds state, verifier,
 * subject, upstream and `return_to` together. Any instance can finish it (callback.ts).
 */
export async function startConnect(
  ctx: ServeContext,
  subject: string,
  upstream: UpstreamConfig,
  returnTo: string,
): Promise<ConnectStart> {
  const server = upstream.url;
  const challenge = await probe(ctx, server);
  const discovery = await discoverServer(server, { store: ctx.store, fetch: ctx.fetch, challenge });
  const as = discovery.authorizationServer;
  const endpoint = authorizationEndpoint(as, server);
  const redirectUri = callbackUrl(ctx);
  const registration = await ensureRegistration({
    store: ctx.store,
    server,
    as,
    config: clientConfigOf(upstream),
    redirectUris: [redirectUri],
    grantTypes: ['authorization_code'],
    applicationType: 'web',
    fetch: ctx.fetch,
    timeoutMs: ctx.requestTimeoutMs,
  });
  const state = oauth.generateRandomState();
  const verifier = oauth.generateRandomCodeVerifier();
  const scope = scopesFor(upstream, discovery, challenge);
  const now = Date.now();
  const attempt: ConnectAttempt = {
    id: attemptId(state),
    subject,
    upstream: upstream.id,
    server,
    returnTo,
    verifier,
    issuer: as.issuer,
    clientId: registration.clientId,
    redirectUri,
    resource: discovery.resource,
    ...(scope === undefined ? {} : { scope }),
    createdAt: now,
    expiresAt: now + ctx.connectTtlMs,
  };
  await ctx.store.addConnectAttempt(attempt);
  return { authorizationUrl: await authorizationUrl(endpoint, attempt, state), expiresAt: attempt.expiresAt };
}

/** The AS's page the user is sent to: PKCE S256, RFC 8707 resource, the attempt's state. */
async function authorizationUrl(endpoint: string, attempt: ConnectAttempt, state: string): Promise<string> {
  const url = new URL(endpoint);
  url.searchParams.set('client_id', attempt.clientId);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('redirect_uri', attempt.redirectUri);
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(attempt.verifier));
  url.searchParams.set('code_challenge_method', 'S256');
  if (attempt.resource !== undefined) url.searchParams.set('resource', attempt.resource);
  if (attempt.scope !== undefined) url.searchParams.set('scope', attempt.scope);
  return url.href;
}

/** The server's own 401 challenge leads discovery and scope choice, as for a desktop login. */
async function probe(ctx: ServeContext, server: string): Promise<BearerChallenge | undefined> {
  try {
    const result = await probeChallenge(server, { fetch: ctx.fetch, timeoutMs: ctx.requestTimeoutMs });
    return result.status === 401 ? result.challenge : undefined;
  } catch {
    return undefined; // discovery then reports the unreachable server in its own words
  }
}

function scopesFor(
  upstream: UpstreamConfig,
  discovery: ServerDiscovery,
  challenge: BearerChallenge | undefined,
): string | undefined {
  if (upstream.scopes !== undefined)
    return upstream.scopes.length > 0 ? upstream.scopes.join(' ') : undefined;
  return selectScopes({
    challenge,
    scopesSupported: discovery.scopesSupported,
    asScopesSupported: discovery.authorizationServer.scopes_supported,
  })?.join(' ');
}

/** `return_to` from the request body: an absolute http(s) URL without credentials. */
export function checkedReturnTo(body: unknown, allowedOrigins?: readonly string[]): string {
  const value = (body as { return_to?: unknown } | null)?.return_to;
  const bad = (why: string): HttpError =>
    new HttpError(400, { error: 'invalid_request', message: `return_to ${why}.` });
  if (typeof value !== 'string' || value === '') throw bad('is required (the URL to send the user back to)');
  if (value.length > 2048) throw bad('is longer than 2048 characters');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad('is not an absolute URL');
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '') {
    throw bad('must be an http(s) URL without user information');
  }
  if (allowedOrigins !== undefined && !allowedOrigins.includes(url.origin)) {
    throw bad(`must be on an allowed origin (${allowedOrigins.join(', ')})`);
  }
  return url.href;
}
