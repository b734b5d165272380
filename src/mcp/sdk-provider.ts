/**
 * latchkey as the `OAuthClientProvider` of `@modelcontextprotocol/sdk` 1.x transports.
 *
 * The SDK's own OAuth code (`auth()`) would refresh tokens itself, per transport and per
 * 401, racing every other process that holds the same refresh token; with rotation and
 * reuse detection that revokes the grant. This provider keeps the SDK off that path:
 *
 * - `tokens()` hands out the access token only, never the refresh token. The SDK refreshes
 *   only when `tokens()` returns a `refresh_token`, so its refresh request is never sent.
 *   The token comes from the manager, which refreshes ahead of expiry, once across
 *   processes.
 * - When the server still answers 401 (a token revoked early), the transport runs `auth()`.
 *   Its first call into the provider hands the rejected token to the manager (a single-
 *   flight refresh, or latchkey's own login) and then ends `auth()` with the SDK's
 *   `UnauthorizedError`, before the SDK discovers, registers or sends anything itself. The
 *   caller retries, as it does after any SDK authorization, and the retry carries the new
 *   token. A credential that needs the user throws latchkey's LOGIN_REQUIRED instead.
 *
 * For zero failed requests on a 401, also give the transport `fetch: createAuthFetch(...)`:
 * it absorbs the 401 below the SDK and resends once (and handles 403 step-up, which this
 * provider cannot see). docs/sdk.md shows both.
 */
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';

import { canonicalServer } from '../credential/key.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import { loginAction } from '../next-action.js';
import type { AccessToken } from '../lifecycle/token-cache.js';
import { bearerOnly } from './bearer-only.js';
import type { TokenSource } from './credentials.js';

export interface SdkAuthProviderOptions {
  /** Where tokens come from: a CredentialManager, or anything shaped like one. */
  manager: TokenSource;
  /** Whose credential. Default: the manager's subject. */
  subject?: string;
  /**
   * May the provider start a login (the manager's acquisition hook) when no credential is
   * usable? Default true. False: the transport fails with LOGIN_REQUIRED instead.
   */
  interactive?: boolean;
}

/** Never used to redirect anyone: latchkey's login runs its own loopback listener. */
const UNUSED_REDIRECT = 'http://127.0.0.1/latchkey-managed';

export function createSdkAuthProvider(
  server: string | URL,
  options: SdkAuthProviderOptions,
): OAuthClientProvider {
  const url = canonicalServer(String(server));
  const interactive = options.interactive ?? true;
  const subject = options.subject === undefined ? {} : { subject: options.subject };
  let handedOut: string | undefined;
  let recovery: Promise<never> | undefined;

  async function tokens(): Promise<OAuthTokens | undefined> {
    try {
      const token = await options.manager.getToken(url, { ...subject, interactive });
      handedOut = token.token;
      return asSdkTokens(token);
    } catch (error) {
      // Unauthenticated, the request draws the server's 401, and auth() reports the error.
      if (isLatchkeyError(error) && error.code === ErrorCode.LOGIN_REQUIRED) return undefined;
      throw error;
    }
  }

  /** The SDK started its authorization: do latchkey's instead, then stop the SDK's. */
  function recover(): Promise<never> {
    recovery ??= (async (): Promise<never> => {
      try {
        await options.manager.getToken(url, {
          ...subject,
          interactive,
          ...(handedOut === undefined ? {} : { rejectedToken: handedOut }),
        });
      } finally {
        recovery = undefined;
      }
      throw new UnauthorizedError(`${url}: latchkey renewed the credential; send the request again.`);
    })();
    return recovery;
  }

  return {
    get redirectUrl() {
      return UNUSED_REDIRECT;
    },
    get clientMetadata(): OAuthClientMetadata {
      return {
        redirect_uris: [UNUSED_REDIRECT],
        client_name: 'latchkey',
        token_endpoint_auth_method: 'none',
      };
    },
    tokens,
    // auth() calls discoveryState() first where it exists (1.2x and later) and
    // clientInformation() first in older 1.x releases.
    discoveryState: recover,
    clientInformation: recover as () => Promise<OAuthClientInformationMixed | undefined>,
    ...sdkFlowRefused(url),
  };
}

/** The SDK's own flow, which latchkey never lets start. */
function sdkFlowRefused(
  url: string,
): Pick<
  OAuthClientProvider,
  | 'saveTokens'
  | 'saveClientInformation'
  | 'redirectToAuthorization'
  | 'saveCodeVerifier'
  | 'codeVerifier'
  | 'invalidateCredentials'
> {
  return {
    saveTokens: () => unreachable(url, 'saveTokens'),
    saveClientInformation: () => unreachable(url, 'saveClientInformation'),
    redirectToAuthorization: () => unreachable(url, 'redirectToAuthorization'),
    saveCodeVerifier: () => unreachable(url, 'saveCodeVerifier'),
    codeVerifier: () => unreachable(url, 'codeVerifier'),
    // Called by the SDK after errors of its own token requests, which it never sends here.
    invalidateCredentials: () => undefined,
  };
}

/** The access token only: without a refresh token, the SDK never refreshes by itself. */
function asSdkTokens(token: AccessToken): OAuthTokens {
  bearerOnly(token);
  return {
    access_token: token.token,
    token_type: token.tokenType,
    ...(token.expiresAt === undefined
      ? {}
      : { expires_in: Math.max(0, Math.floor((token.expiresAt - Date.now()) / 1000)) }),
    ...(token.scopes.length === 0 ? {} : { scope: token.scopes.join(' ') }),
  };
}

/** The SDK's own OAuth flow never gets this far with this provider; say so if it does. */
function unreachable(server: string, method: string): never {
  throw new LatchkeyError(
    ErrorCode.INVALID_INPUT,
    `the MCP SDK called ${method}() of latchkey's provider: latchkey runs the OAuth flow itself and does not take tokens from the SDK.`,
    {
      server,
      retryable: false,
      next: loginAction(server, {
        detail:
          "latchkey runs the login (the manager's login()); do not call the SDK's auth() or finishAuth()",
      }),
    },
  );
}
