import { canonicalServer } from '../credential/key.js';
import { jwtExpiry } from '../credential/jwt.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import type { AcquiredTokens, AcquireRequest } from '../lifecycle/acquire.js';
import type { CredentialManager } from '../lifecycle/manager.js';
import { authorizationServerMetadata } from '../oauth/discovery.js';
import type { CredentialStore } from '../store/contract.js';
import type { IdpSource } from './enterprise.js';
import type { LoginFlow, LoginOptions } from './options.js';
import type { FlowRun, LoginStrategy } from './strategy.js';

/**
 * The enterprise IdP session (a login whose server is the IdP itself): one sign-in at the IdP,
 * stored as a credential of its own (server = issuer = the IdP issuer, `idpSession` set), so
 * it is refreshed single-flight across processes like any credential. Its ID token is what
 * every ID-JAG exchange presents (enterprise.ts).
 */

/** An ID token this close to expiry is refreshed before it is presented. */
const ID_TOKEN_SKEW_MS = 60_000;

/** The scopes of the IdP sign-in: OpenID for the ID token, offline_access when offered. */
export function idpScopes(scopesSupported: readonly string[] | undefined): string[] {
  return scopesSupported?.includes('offline_access') === true ? ['openid', 'offline_access'] : ['openid'];
}

/**
 * Sign in at the IdP itself: no MCP discovery (the IdP is no MCP server), its own metadata,
 * the browser or device strategy, and no RFC 8707 resource.
 */
export async function idpLogin(
  options: LoginOptions,
  request: AcquireRequest,
  strategies: Readonly<Record<LoginFlow, LoginStrategy>>,
  flow: LoginFlow,
): Promise<AcquiredTokens> {
  const as = await authorizationServerMetadata(options.store, request.server, {
    server: request.server,
    fetch: options.fetch,
    signal: request.signal,
  });
  const scopes = idpScopes(as.scopes_supported);
  const run: FlowRun = {
    options,
    request,
    as,
    scope: scopes.join(' '),
    resource: undefined,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    // The IdP session is no MCP server's token: nothing would present it with a proof.
    dpop: false,
    notify: options.notify ?? ((text: string) => void process.stderr.write(text)),
  };
  const strategy = flow === 'device' ? strategies.device : strategies.browser;
  const result = await strategy(run);
  return {
    issuer: as.issuer,
    clientId: result.clientId,
    requestedAt: result.grant.requestedAt,
    response: result.grant.response,
    requestedScopes: scopes,
    owned: true,
    resource: null,
    idpSession: true,
  };
}

/** The IdP sessions in `store`: the issuers of the credentials `login --idp` wrote. */
export async function storedIdpIssuers(store: CredentialStore, subject?: string): Promise<string[]> {
  const all = await store.listCredentials(subject === undefined ? {} : { subject });
  return [...new Set(all.filter((c) => c.idpSession === true).map((c) => c.key.issuer))];
}

/**
 * What `logout --idp <issuer>` logs out of: every server whose credential was derived from
 * that IdP session (an ID-JAG), then the session itself, so no derived token outlives it.
 */
export async function idpLogoutServers(store: CredentialStore, issuer: string): Promise<string[]> {
  const idp = canonicalServer(issuer);
  const all = await store.listCredentials();
  const derived = all.filter((c) => c.idp !== undefined && canonicalServer(c.idp) === idp);
  return [...new Set([...derived.map((c) => c.key.server), idp])];
}

/**
 * The IdP session stored for `issuer` as an IdpSource: the client it signed in with (its
 * registration at the IdP) and an ID token that is refreshed through `manager` when it is
 * about to expire. Undefined when no session is stored.
 */
export async function storedIdpSource(
  manager: Pick<CredentialManager, 'getToken' | 'store'>,
  issuer: string,
): Promise<IdpSource | undefined> {
  const registration = await manager.store.getRegistration(issuer);
  if (registration === undefined) return undefined;
  return {
    issuer,
    clientId: registration.clientId,
    ...(registration.clientSecret === undefined ? {} : { clientSecret: registration.clientSecret }),
    idToken: () => currentIdToken(manager, issuer),
  };
}

async function currentIdToken(
  manager: Pick<CredentialManager, 'getToken' | 'store'>,
  issuer: string,
): Promise<string> {
  try {
    return await freshIdToken(manager, issuer);
  } catch (error) {
    // The manager's words name a server login; this one is renewed with `login --idp`.
    if (isLatchkeyError(error) && error.code === ErrorCode.LOGIN_REQUIRED)
      throw idpSignInNeeded(issuer, error);
    throw error;
  }
}

async function freshIdToken(
  manager: Pick<CredentialManager, 'getToken' | 'store'>,
  issuer: string,
): Promise<string> {
  const server = canonicalServer(issuer);
  // Not interactive: an IdP session that needs a sign-in is the user's to renew (login --idp).
  let token = await manager.getToken(server, { interactive: false });
  for (let attempt = 0; ; attempt++) {
    const [credential] = await manager.store.listCredentials({
      server,
      issuer: token.issuer,
      subject: token.subject,
    });
    const idToken = credential?.secrets.idToken;
    const expiresAt = idToken === undefined ? undefined : jwtExpiry(idToken);
    if (idToken !== undefined && (expiresAt === undefined || expiresAt - ID_TOKEN_SKEW_MS > Date.now()))
      return idToken;
    if (attempt > 0) throw idpSignInNeeded(issuer);
    // The access token may outlive the ID token: refresh the session (single-flight, leased).
    token = await manager.getToken(server, { interactive: false, rejectedToken: token.token });
  }
}

/**
 * A resolver for `LoginOptions.idp`: the first IdP session stored, through the manager once
 * it exists (the hook is built before the manager that runs it).
 */
export function storedIdpSession(
  manager: () => Pick<CredentialManager, 'getToken' | 'store'> | undefined,
): () => Promise<IdpSource | undefined> {
  return async () => {
    const m = manager();
    if (m === undefined) return undefined;
    const [issuer] = await storedIdpIssuers(m.store);
    return issuer === undefined ? undefined : storedIdpSource(m, issuer);
  };
}

function idpSignInNeeded(issuer: string, cause?: unknown): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.LOGIN_REQUIRED,
    `the session at the identity provider ${issuer} has ended; sign in to it again.`,
    { server: issuer, retryable: false, next: { kind: 'login', server: issuer, idp: true }, cause },
  );
}
