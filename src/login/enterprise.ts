import type * as oauth from 'oauth4webapi';

import { ErrorCode, LatchkeyError } from '../errors.js';
import { buildContext, type ClientContext } from '../oauth/client-context.js';
import { authorizationServerMetadata } from '../oauth/discovery.js';
import { acceptsIdJag, requestIdJag } from '../oauth/id-jag.js';
import { JWT_BEARER_GRANT, jwtBearerGrant } from '../oauth/jwt-bearer.js';
import type { Registration } from '../store/contract.js';
import { contextFor, type FlowResult, type FlowRun, registerFor } from './strategy.js';

/**
 * Where an enterprise login gets the user's IdP identity from: the IdP's client settings
 * and a source of the current ID token. The CLI's `login --idp` session is one source
 * (src/login/idp-session.ts); an embedding host that signed the user in itself is another.
 */
export interface IdpSource {
  /** The IdP's issuer identifier. */
  issuer: string;
  /** The IdP's token endpoint. Default: from the IdP's metadata (OIDC or RFC 8414 discovery). */
  tokenEndpoint?: string;
  /** latchkey's client id at the IdP. */
  clientId: string;
  /** Its secret, for a confidential client (client_secret_basic). Default: a public client. */
  clientSecret?: string;
  /**
   * The user's current ID token. Called once per exchange, so a source that refreshes an
   * expired ID token (single-flight, like any credential) keeps every server reachable.
   */
  idToken(signal: AbortSignal): Promise<string>;
}

/**
 * The enterprise strategy: no browser. The ID token is exchanged at the IdP for an ID-JAG
 * addressed to this server's AS, which the AS redeems with the JWT bearer grant. The AS
 * issues no refresh token (IDJAG §4.4.3), so an expired access token comes back here: a
 * fresh ID-JAG each time, since an AS may refuse a replayed one (EMA §7.4.2).
 */
export async function enterpriseLogin(run: FlowRun): Promise<FlowResult> {
  const { server, signal } = run.request;
  const idp = run.options.idp;
  // login.ts resolves a function form before any strategy runs.
  if (idp === undefined || typeof idp === 'function')
    throw notConfigured(server, 'no identity provider is configured');
  if (!acceptsIdJag(run.as)) {
    throw notConfigured(server, `the authorization server ${run.as.issuer} does not accept ID-JAGs`);
  }
  const idpContext = await idpClientContext(run, idp);
  const idToken = await idp.idToken(signal);
  const jag = await requestIdJag(idpContext, {
    idToken,
    audience: run.as.issuer,
    resource: run.resource,
    scope: run.scope,
    timeoutMs: run.requestTimeoutMs,
    signal,
    server,
  });
  const registration = await registerFor(run, { redirectUris: [], grantTypes: [JWT_BEARER_GRANT] });
  const ctx = await contextFor(run, registration);
  const grant = await jwtBearerGrant(ctx, {
    assertion: jag.assertion,
    resource: run.resource,
    scope: run.scope,
    timeoutMs: run.requestTimeoutMs,
    signal,
    server,
    assertionKind: 'id-jag',
  });
  return { clientId: registration.clientId, grant, resource: run.resource, idp: idp.issuer };
}

/** Whether the enterprise strategy applies to this AS: an IdP is configured and the AS takes ID-JAGs. */
export function enterpriseEligible(run: Pick<FlowRun, 'options' | 'as'>): boolean {
  const { idp } = run.options;
  return idp !== undefined && typeof idp !== 'function' && acceptsIdJag(run.as);
}

async function idpClientContext(run: FlowRun, idp: IdpSource): Promise<ClientContext> {
  const as: oauth.AuthorizationServer =
    idp.tokenEndpoint === undefined
      ? await authorizationServerMetadata(run.options.store, idp.issuer, {
          server: run.request.server,
          fetch: run.options.fetch,
          signal: run.request.signal,
        })
      : { issuer: idp.issuer, token_endpoint: idp.tokenEndpoint };
  const registration: Registration = {
    issuer: idp.issuer,
    clientId: idp.clientId,
    tokenEndpointAuthMethod: idp.clientSecret === undefined ? 'none' : 'client_secret_basic',
    ...(idp.clientSecret === undefined ? {} : { clientSecret: idp.clientSecret }),
    method: 'pre-registered',
    registeredAt: Date.now(),
  };
  return buildContext(as, registration, {
    fetch: run.options.fetch,
    server: run.request.server,
    warn: (text) => run.notify(`warning: ${text}\n`),
  });
}

function notConfigured(server: string, problem: string): LatchkeyError {
  return new LatchkeyError(ErrorCode.INVALID_INPUT, `enterprise login is not possible: ${problem}.`, {
    server,
    retryable: false,
    next: {
      kind: 'configure',
      detail: 'sign in to an identity provider whose servers accept ID-JAGs, or use another login flow',
    },
  });
}
