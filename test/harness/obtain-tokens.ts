/**
 * A complete, standards-following login in one call: discovery, authorization code with
 * PKCE (S256), RFC 8707 resource, RFC 9207 iss check, code redemption. Tests use it to seed
 * a credential without going through latchkey's own login code, so that code can be tested
 * against tokens it did not produce.
 */
import * as oauth from 'oauth4webapi';

import { completeAuthorization } from '../../src/demo/login-driver.js';

/** The parts of a TestAuthorizationServer the flow needs. */
export interface TokenIssuer {
  readonly issuer: string;
  readonly clientId: string;
  /** Default scope to request. */
  readonly scope?: string;
}

export interface ObtainTokensOptions {
  /** RFC 8707 resource (the MCP server URL); the AS must know it. */
  resource: string;
  /** Default: the AS's resource scope. */
  scope?: string;
  /** Login name at the AS; the tokens' subject. */
  subject: string;
  /** Default: the AS's public client. */
  clientId?: string;
  /** Any loopback port works for the native client; nothing needs to listen there. */
  redirectUri?: string;
}

export interface ObtainedTokens {
  /** The token endpoint's JSON exactly as sent (token_type not normalized). */
  response: Record<string, unknown> & {
    access_token: string;
    token_type: string;
    expires_in?: number;
    refresh_token?: string;
    scope?: string;
  };
  /** Epoch ms taken just before the token request was sent: the base for expires_in. */
  requestedAt: number;
  issuer: string;
  clientId: string;
  subject: string;
}

/** The test servers are plain http on loopback; oauth4webapi insists on https otherwise. */
export const insecure = { [oauth.allowInsecureRequests]: true } as const;

export const DEFAULT_REDIRECT_URI = 'http://127.0.0.1:53682/callback';

export async function discover(issuer: string): Promise<oauth.AuthorizationServer> {
  const url = new URL(issuer);
  return oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url, insecure));
}

export async function obtainTokens(as: TokenIssuer, options: ObtainTokensOptions): Promise<ObtainedTokens> {
  const clientId = options.clientId ?? as.clientId;
  const redirectUri = options.redirectUri ?? DEFAULT_REDIRECT_URI;
  const metadata = await discover(as.issuer);
  if (metadata.authorization_endpoint === undefined) throw new Error('the AS has no authorization endpoint');
  const client: oauth.Client = { client_id: clientId };

  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(metadata.authorization_endpoint);
  url.search = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: options.scope ?? as.scope ?? 'mcp:tools',
    resource: options.resource,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString();

  const callback = await completeAuthorization(url, { subject: options.subject });
  const params = oauth.validateAuthResponse(metadata, client, callback, state);

  const requestedAt = Date.now();
  const response = await oauth.authorizationCodeGrantRequest(
    metadata,
    client,
    oauth.None(),
    params,
    redirectUri,
    verifier,
    { ...insecure, additionalParameters: { resource: options.resource } },
  );
  // Keep the body as sent; oauth4webapi validates it (and lowercases token_type) on its copy.
  const raw = (await response.clone().json()) as ObtainedTokens['response'];
  await oauth.processAuthorizationCodeResponse(metadata, client, response);
  return { response: raw, requestedAt, issuer: metadata.issuer, clientId, subject: options.subject };
}
