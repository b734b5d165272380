import * as oauth from 'oauth4webapi';

import { ErrorCode, LatchkeyError } from '../errors.js';
import { secrets } from '../redact.js';
import type { ClientContext } from './client-context.js';
import { requestSignal } from './grants.js';
import { JWT_BEARER_GRANT } from './jwt-bearer.js';
import { asRequestError } from './oauth-errors.js';

/**
 * Enterprise-managed authorization (SEP-990, draft-ietf-oauth-identity-assertion-authz-grant):
 * the user's ID token from the enterprise IdP is exchanged at the IdP (RFC 8693) for an
 * Identity Assertion JWT Authorization Grant (ID-JAG) addressed to one MCP server's AS, which
 * the AS then redeems with the RFC 7523 JWT bearer grant (jwt-bearer.ts). No browser: the
 * IdP decides by policy whether this user may reach that server.
 */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ID_JAG_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id-jag';
export const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
/** The AS metadata's optional, more specific signal (IDJAG §7.2); jwt-bearer alone suffices. */
export const ID_JAG_GRANT_PROFILE = 'urn:ietf:params:oauth:grant-profile:id-jag';

/**
 * Whether the AS takes ID-JAGs: it lists the JWT bearer grant, or the ID-JAG grant profile
 * (which implies it). An AS that lists neither is not tried, so an enterprise session never
 * turns into a failed request at an AS that would have wanted a browser login.
 */
export function acceptsIdJag(as: oauth.AuthorizationServer): boolean {
  const grants = as.grant_types_supported ?? [];
  const profiles = as['authorization_grant_profiles_supported'];
  return (
    grants.includes(JWT_BEARER_GRANT) || (Array.isArray(profiles) && profiles.includes(ID_JAG_GRANT_PROFILE))
  );
}

export interface IdJagRequest {
  /** The user's ID token from the IdP, sent as `subject_token`. */
  idToken: string;
  /** The resource AS's issuer identifier (EMA §4: a MUST). */
  audience: string;
  /** The protected-resource metadata's `resource`, byte for byte; undefined omits it. */
  resource: string | undefined;
  scope?: string | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** The MCP server named in errors. */
  server: string;
}

export interface IdJag {
  /** The ID-JAG itself (a JWT), to be forwarded unchanged. */
  assertion: string;
  /** Epoch ms the IdP said it expires at, when it said. */
  expiresAt?: number;
}

/**
 * One RFC 8693 token exchange at the IdP (`idp` is the client context at the IdP: its token
 * endpoint and latchkey's client there). The answer's `token_type` is `N_A` (RFC 8693 §2.2.1:
 * the issued token is not an access token), which oauth4webapi only accepts when told.
 */
export async function requestIdJag(idp: ClientContext, request: IdJagRequest): Promise<IdJag> {
  const params = new URLSearchParams({
    requested_token_type: ID_JAG_TOKEN_TYPE,
    audience: request.audience,
    subject_token: request.idToken,
    subject_token_type: ID_TOKEN_TYPE,
  });
  if (request.resource !== undefined) params.set('resource', request.resource);
  if (request.scope !== undefined && request.scope !== '') params.set('scope', request.scope);
  const options = idp.requestOptions(requestSignal(request.timeoutMs, request.signal));
  const sentAt = Date.now();
  let answer: oauth.TokenEndpointResponse;
  try {
    const response = await oauth.genericTokenEndpointRequest(
      idp.as,
      idp.client,
      idp.clientAuth,
      TOKEN_EXCHANGE_GRANT,
      params,
      options,
    );
    answer = await oauth.processGenericTokenEndpointResponse(idp.as, idp.client, response, {
      recognizedTokenTypes: { n_a: () => undefined },
    });
  } catch (error) {
    throw exchangeError(idp, request, error);
  }
  secrets.add(answer.access_token);
  if (answer['issued_token_type'] !== undefined && answer['issued_token_type'] !== ID_JAG_TOKEN_TYPE) {
    throw new LatchkeyError(
      ErrorCode.AS_UNAVAILABLE,
      `the identity provider ${idp.as.issuer} issued a ${String(answer['issued_token_type'])} instead of an ID-JAG.`,
      { server: request.server, retryable: false, next: idpConfigure(idp.as.issuer) },
    );
  }
  const expiresIn = answer.expires_in;
  return {
    assertion: answer.access_token,
    ...(typeof expiresIn === 'number' ? { expiresAt: sentAt + expiresIn * 1000 } : {}),
  };
}

function exchangeError(idp: ClientContext, request: IdJagRequest, error: unknown): LatchkeyError {
  const { server } = request;
  return asRequestError(
    error,
    {
      server,
      what: `the token exchange at the identity provider ${idp.as.issuer} failed temporarily`,
      cancelled: 'the token exchange at the identity provider was cancelled.',
      signal: request.signal,
    },
    (refused) =>
      new LatchkeyError(
        // invalid_grant: the ID token is no longer accepted, so the IdP session needs a login;
        // anything else is the IdP's policy or setup, which a new login will not change.
        refused.code === 'invalid_grant' ? ErrorCode.LOGIN_REQUIRED : ErrorCode.CLIENT_REJECTED,
        `the identity provider ${idp.as.issuer} refused to issue an ID-JAG for ${request.audience} (${refused.code}${refused.description}).`,
        {
          server,
          retryable: false,
          next:
            refused.code === 'invalid_grant'
              ? { kind: 'login', server: idp.as.issuer, idp: true }
              : idpConfigure(idp.as.issuer),
          cause: refused.cause,
        },
      ),
  );
}

function idpConfigure(issuer: string): LatchkeyError['next'] {
  return {
    kind: 'configure',
    detail: `ask the administrator of ${issuer} to allow this client to reach the server`,
  };
}
