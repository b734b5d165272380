import * as oauth from 'oauth4webapi';

import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import { loginAction } from '../next-action.js';
import { secrets } from '../redact.js';
import { preflightAuthorization } from '../oauth/authorization-preflight.js';
import type { BrowserOpener } from './browser.js';
import type { ClientContext } from '../oauth/client-context.js';
import { type GrantResult, grantResult, processTokenResponse, requestSignal } from '../oauth/grants.js';
import { isLoopbackUrl } from '../oauth/loopback.js';
import type { AuthorizationCallback, RedirectReceiver } from './redirect-receiver.js';
import type { ResultOutcome } from './result-page.js';
import { asRequestError, safeCode } from '../oauth/oauth-errors.js';

/**
 * Authorization code with PKCE (OAuth 2.1 §4.1), the browser login. S256 only; `state` and
 * RFC 9207 `iss` are checked before the code goes anywhere; RFC 8707 `resource` is sent in
 * both the authorization and the token request.
 */
export interface AuthorizationCodeOptions {
  ctx: ClientContext;
  /** The MCP server being authorized (for errors and the result page). */
  server: string;
  receiver: RedirectReceiver;
  /** RFC 8707 resource; undefined only when the `omitResource` quirk is set. */
  resource: string | undefined;
  scope: string | undefined;
  /** IdP quirks such as `access_type=offline`, `prompt=consent`. Cannot override protocol parameters. */
  extraParams?: Readonly<Record<string, string>>;
  openBrowser: BrowserOpener;
  /** Told the URL before the browser opens, so the user can open it by hand. */
  onAuthorizationUrl?: (url: string) => void;
  /**
   * A non-secret id of this login attempt, put in front of the random `state`, so a later
   * login's listener can recognize this login's tab once it has been replaced.
   */
  attempt?: string;
  /** Whether `attempt` names a login that a newer one replaced (read from the store's events). */
  isReplacedAttempt?: (attempt: string) => Promise<boolean>;
  /** Told of each response ignored because it was not this login's (stale, replaced or forged). */
  onIgnoredResponse?: (reason: 'replaced' | 'foreign', count: number) => void;
  /** Told when the browser could not be started: the user must open the URL by hand. */
  onBrowserUnavailable?: (url: string, error: unknown) => void;
  /** How long the user has to finish in the browser. */
  timeoutMs: number;
  requestTimeoutMs: number;
  signal?: AbortSignal;
  /** For the preflight of the authorization URL (see authorization-preflight.ts). Default: global fetch. */
  fetch?: typeof fetch | undefined;
  /**
   * Ask the authorization endpoint whether it accepts the client before the browser opens, so
   * a forgotten registration fails in milliseconds instead of after `timeoutMs`. Default true.
   */
  preflight?: boolean;
}

const PROTOCOL_PARAMS = new Set([
  'client_id',
  'response_type',
  'redirect_uri',
  'state',
  'code_challenge',
  'code_challenge_method',
  'resource',
  'scope',
  'dpop_jkt',
]);

export async function authorizationCodeFlow(options: AuthorizationCodeOptions): Promise<GrantResult> {
  const { ctx, server, receiver } = options;
  const endpoint = authorizationEndpoint(ctx.as, server);
  const verifier = oauth.generateRandomCodeVerifier();
  // The issuer is fixed now, from validated metadata, in the same flow record as the
  // verifier and state (AUTH-50): `ctx.as.issuer` is what the response's iss must equal.
  const state =
    options.attempt === undefined
      ? oauth.generateRandomState()
      : `${options.attempt}.${oauth.generateRandomState()}`;
  const url = new URL(endpoint);
  for (const [name, value] of Object.entries(options.extraParams ?? {})) {
    if (!PROTOCOL_PARAMS.has(name)) url.searchParams.set(name, value);
  }
  url.searchParams.set('client_id', ctx.client.client_id);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('redirect_uri', receiver.redirectUri);
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
  url.searchParams.set('code_challenge_method', 'S256');
  if (options.resource !== undefined) url.searchParams.set('resource', options.resource);
  if (options.scope !== undefined && options.scope !== '') url.searchParams.set('scope', options.scope);
  // Binds the code to the DPoP key, so a code stolen on its way back cannot be redeemed with
  // another key (RFC 9449 §10).
  const jkt = await ctx.dpopThumbprint?.();
  if (jkt !== undefined) url.searchParams.set('dpop_jkt', jkt);

  if (options.preflight !== false) await preflight(url.href, options);
  options.onAuthorizationUrl?.(url.href);
  // Not awaited: an opener may only return once the page is done with (a test's headless
  // driver does). If it fails the printed URL still works, and the caller is told at once.
  options.openBrowser(url.href).catch((error: unknown) => options.onBrowserUnavailable?.(url.href, error));

  const { callback, params } = await awaitOwnResponse(options, state);
  try {
    const result = await redeemCode(ctx, params, receiver.redirectUri, verifier, options);
    callback.answer({ ok: true });
    return result;
  } catch (error) {
    callback.answer({ ok: false, message: 'the authorization server did not issue tokens.' });
    throw error;
  }
}

/**
 * Wait for this login's authorization response. Responses that are not this login's (wrong
 * `state`, or the right state with another issuer) get a page saying so, are counted, and
 * the wait goes on: a stale tab or a forged request must not end a login the user is doing.
 */
async function awaitOwnResponse(
  options: AuthorizationCodeOptions,
  state: string,
): Promise<{ callback: AuthorizationCallback; params: URLSearchParams }> {
  const { ctx, server, receiver } = options;
  const deadline = Date.now() + options.timeoutMs;
  let ignored = 0;
  for (;;) {
    const callback = await withTimeout(receiver.next(), deadline - Date.now(), options, server);
    const verdict = await judgeResponse(options, callback.params, state);
    if (verdict.kind === 'own') {
      try {
        return { callback, params: validateCallback(ctx, server, callback.params, state) };
      } catch (error) {
        callback.answer({
          ok: false,
          message: isLatchkeyError(error) ? firstSentence(error) : 'the login failed.',
        });
        throw error;
      }
    }
    ignored++;
    callback.answer(ignoredPage(server, verdict.kind));
    options.onIgnoredResponse?.(verdict.kind, ignored);
  }
}

type Verdict = { kind: 'own' } | { kind: 'replaced' } | { kind: 'foreign' };

async function judgeResponse(
  options: AuthorizationCodeOptions,
  params: URLSearchParams,
  state: string,
): Promise<Verdict> {
  const received = params.get('state');
  if (received !== state) {
    const attempt = received?.split('.')[0];
    const replaced =
      attempt !== undefined &&
      /^[0-9a-f]{1,32}$/.test(attempt) &&
      attempt !== options.attempt &&
      (await options.isReplacedAttempt?.(attempt).catch(() => false)) === true;
    return { kind: replaced ? 'replaced' : 'foreign' };
  }
  // RFC 9207: with the right state but another issuer, this is a mix-up attempt, not ours.
  const iss = params.get('iss');
  if (iss !== null && iss !== options.ctx.as.issuer) return { kind: 'foreign' };
  return { kind: 'own' };
}

function ignoredPage(server: string, kind: 'replaced' | 'foreign'): ResultOutcome {
  return kind === 'replaced'
    ? {
        ok: false,
        ignored: true,
        title: 'This sign-in was replaced',
        message: `A newer login to ${server} replaced the one this tab belongs to, so this sign-in was not used. Finish the newest sign-in instead.`,
      }
    : {
        ok: false,
        ignored: true,
        title: 'Not this sign-in',
        message: `This response does not belong to the login to ${server} in progress (an old tab, or a request from elsewhere). It was ignored; the login is still waiting.`,
      };
}

/** Throws CLIENT_REJECTED when the AS refuses the client or redirect URI outright. */
async function preflight(url: string, options: AuthorizationCodeOptions): Promise<void> {
  const verdict = await preflightAuthorization(url, {
    fetch: options.fetch,
    timeoutMs: Math.min(options.requestTimeoutMs, 10_000),
    signal: options.signal,
  });
  if (verdict.kind !== 'refused') return;
  const { as, client } = options.ctx;
  const why =
    verdict.error === undefined ? `HTTP ${verdict.status}` : `HTTP ${verdict.status}, ${verdict.error}`;
  throw new LatchkeyError(
    ErrorCode.CLIENT_REJECTED,
    `the authorization server ${as.issuer} refuses the client ${JSON.stringify(client.client_id)} or its redirect URI ${options.receiver.redirectUri} (${why}), so the browser login cannot complete.`,
    {
      server: options.server,
      retryable: false,
      next: {
        kind: 'configure',
        detail: `if you configured this client, check its id and registered redirect URIs at ${as.issuer}; otherwise ask the server operator why ${as.issuer} refuses newly registered clients`,
      },
    },
  );
}

/** The AS's authorization endpoint, refused unless it is https (or loopback) and supports S256. */
export function authorizationEndpoint(as: oauth.AuthorizationServer, server: string): string {
  const methods = as.code_challenge_methods_supported;
  if (!Array.isArray(methods) || !methods.includes('S256')) {
    // AUTH-43/45: without advertised S256 support, PKCE cannot be verified; refuse.
    throw new LatchkeyError(
      ErrorCode.DISCOVERY_FAILED,
      `the authorization server ${as.issuer} does not advertise PKCE S256 (code_challenge_methods_supported), so latchkey will not log in there.`,
      {
        server,
        retryable: false,
        next: { kind: 'operator', detail: 'ask the server operator to enable PKCE with S256' },
      },
    );
  }
  const endpoint = as.authorization_endpoint;
  let parsed: URL | undefined;
  try {
    parsed = endpoint === undefined ? undefined : new URL(endpoint);
  } catch {
    parsed = undefined;
  }
  if (
    parsed === undefined ||
    (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && isLoopbackUrl(parsed)))
  ) {
    throw new LatchkeyError(
      ErrorCode.DISCOVERY_FAILED,
      `the authorization server ${as.issuer} has no usable https authorization endpoint.`,
      {
        server,
        retryable: false,
        next: {
          kind: 'configure',
          detail: 'check the server URL; the authorization server metadata is invalid',
        },
      },
    );
  }
  return parsed.href;
}

/** The redirect's parameters, checked for `state`, RFC 9207 `iss` and an AS error. */
export function validateCallback(
  ctx: ClientContext,
  server: string,
  callback: URLSearchParams,
  state: string,
): URLSearchParams {
  try {
    return oauth.validateAuthResponse(ctx.as, ctx.client, callback, state);
  } catch (error) {
    if (error instanceof oauth.AuthorizationResponseError) {
      // Only reached after state and iss matched, so the AS's error is trustworthy (AUTH-53).
      const denied = error.error === 'access_denied';
      throw new LatchkeyError(
        denied ? ErrorCode.CANCELLED : ErrorCode.LOGIN_REQUIRED,
        denied
          ? 'access was denied at the authorization server.'
          : `the authorization server refused the login (${safeCode(error.error)}).`,
        { server, retryable: false, next: loginAction(server, { again: true }), cause: error },
      );
    }
    throw new LatchkeyError(
      ErrorCode.LOGIN_REQUIRED,
      `the authorization response was rejected: ${describeValidation(error)}.`,
      { server, retryable: false, next: loginAction(server, { again: true }), cause: error },
    );
  }
}

/** Redeem a validated authorization response for tokens (one request, never retried). */
export type RedeemOptions = Pick<
  AuthorizationCodeOptions,
  'server' | 'resource' | 'requestTimeoutMs' | 'signal'
>;

export async function redeemCode(
  ctx: ClientContext,
  params: URLSearchParams,
  redirectUri: string,
  verifier: string,
  options: RedeemOptions,
): Promise<GrantResult> {
  const extra = new URLSearchParams();
  if (options.resource !== undefined) extra.set('resource', options.resource);
  const signal = requestSignal(options.requestTimeoutMs, options.signal);
  const requestedAt = Date.now();
  try {
    const response = await oauth.authorizationCodeGrantRequest(
      ctx.as,
      ctx.client,
      ctx.clientAuth,
      params,
      redirectUri,
      verifier,
      {
        ...ctx.requestOptions(signal),
        additionalParameters: extra,
      },
    );
    return grantResult(
      await processTokenResponse(ctx, response, (r) =>
        oauth.processAuthorizationCodeResponse(ctx.as, ctx.client, r),
      ),
      requestedAt,
    );
  } catch (error) {
    throw redeemError(error, options);
  }
}

function redeemError(error: unknown, options: RedeemOptions): LatchkeyError {
  const { server } = options;
  // The code is spent either way: whatever failed, a new login is what gets tokens.
  const next = loginAction(server, { again: true });
  const what = 'the authorization code could not be redeemed';
  const request = {
    server,
    what,
    cancelled: 'the login was cancelled.',
    signal: options.signal,
    retryNext: next,
  };
  return asRequestError(
    error,
    request,
    (refused) =>
      new LatchkeyError(
        refused.kind === 'client-rejected' ? ErrorCode.CLIENT_REJECTED : ErrorCode.LOGIN_REQUIRED,
        `${what} (${secrets.scrub(refused.code + refused.description)}).`,
        { server, retryable: false, next, cause: refused.cause },
      ),
  );
}

function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  options: Pick<AuthorizationCodeOptions, 'timeoutMs' | 'signal'>,
  server: string,
): Promise<T> {
  const signal = options.signal;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new LatchkeyError(
            ErrorCode.CANCELLED,
            `the browser login did not finish within ${Math.round(options.timeoutMs / 1000)} s.`,
            {
              server,
              retryable: true,
              next: loginAction(server, {
                again: true,
                detail: 'or use the device flow on a machine without a browser',
              }),
            },
          ),
        ),
      Math.max(0, ms),
    );
    onAbort = () =>
      reject(
        new LatchkeyError(ErrorCode.CANCELLED, 'the login was cancelled.', { server, retryable: false }),
      );
    if (signal?.aborted === true) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
  // Whichever settles first, the timer and listener go: nothing may keep the process alive.
  return Promise.race([promise, stop]).finally(() => {
    clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  });
}

function describeValidation(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/state/i.test(message)) return 'its state does not match this login (a stale tab or a forged response)';
  if (/iss/i.test(message)) return 'its issuer (iss) is not the authorization server this login started at';
  return 'it is malformed';
}

function firstSentence(error: LatchkeyError): string {
  const text = error.message.startsWith(`${error.server}: `)
    ? error.message.slice(`${error.server}: `.length)
    : error.message;
  return text.split(' Next step:')[0] ?? text;
}
