import * as oauth from 'oauth4webapi';

import { ErrorCode, isLatchkeyError, LatchkeyError, loginCommand } from '../errors.js';
import { secrets } from '../credential/redact.js';
import type { BrowserOpener } from './browser.js';
import type { ClientContext } from './client-context.js';
import { type GrantResult, grantResult, requestSignal } from './grants.js';
import { isLoopbackUrl } from './loopback.js';
import type { RedirectReceiver } from './redirect-receiver.js';
import { classifyTokenFailure } from './token-error.js';

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
  /** Told when the browser could not be started: the user must open the URL by hand. */
  onBrowserUnavailable?: (url: string, error: unknown) => void;
  /** How long the user has to finish in the browser. */
  timeoutMs: number;
  requestTimeoutMs: number;
  signal?: AbortSignal;
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
]);

export async function authorizationCodeFlow(options: AuthorizationCodeOptions): Promise<GrantResult> {
  const { ctx, server, receiver } = options;
  const endpoint = authorizationEndpoint(ctx.as, server);
  const verifier = oauth.generateRandomCodeVerifier();
  // The issuer is fixed now, from validated metadata, in the same flow record as the
  // verifier and state (AUTH-50): `ctx.as.issuer` is what the response's iss must equal.
  const state = oauth.generateRandomState();
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

  options.onAuthorizationUrl?.(url.href);
  // Not awaited: an opener may only return once the page is done with (a test's headless
  // driver does). If it fails the printed URL still works, and the caller is told at once.
  options.openBrowser(url.href).catch((error: unknown) => options.onBrowserUnavailable?.(url.href, error));

  let params: URLSearchParams;
  try {
    const callback = await withTimeout(receiver.callback, options.timeoutMs, server, options.signal);
    params = validateCallback(ctx, server, callback, state);
  } catch (error) {
    receiver.finish({
      ok: false,
      message: isLatchkeyError(error) ? firstSentence(error) : 'the login failed.',
    });
    throw error;
  }
  try {
    const result = await redeemCode(ctx, params, receiver.redirectUri, verifier, options);
    receiver.finish({ ok: true });
    return result;
  } catch (error) {
    receiver.finish({ ok: false, message: 'the authorization server did not issue tokens.' });
    throw error;
  }
}

function authorizationEndpoint(as: oauth.AuthorizationServer, server: string): string {
  const methods = as.code_challenge_methods_supported;
  if (!Array.isArray(methods) || !methods.includes('S256')) {
    // AUTH-43/45: without advertised S256 support, PKCE cannot be verified; refuse.
    throw new LatchkeyError(
      ErrorCode.DISCOVERY_FAILED,
      `the authorization server ${as.issuer} does not advertise PKCE S256 (code_challenge_methods_supported), so latchkey will not log in there.`,
      { server, retryable: false, nextStep: 'ask the server operator to enable PKCE with S256' },
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
        nextStep: 'check the server URL; the authorization server metadata is invalid',
      },
    );
  }
  return parsed.href;
}

function validateCallback(
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
        { server, retryable: false, nextStep: `run \`${loginCommand(server)}\` again`, cause: error },
      );
    }
    throw new LatchkeyError(
      ErrorCode.LOGIN_REQUIRED,
      `the authorization response was rejected: ${describeValidation(error)}.`,
      { server, retryable: false, nextStep: `run \`${loginCommand(server)}\` again`, cause: error },
    );
  }
}

async function redeemCode(
  ctx: ClientContext,
  params: URLSearchParams,
  redirectUri: string,
  verifier: string,
  options: AuthorizationCodeOptions,
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
      await oauth.processAuthorizationCodeResponse(ctx.as, ctx.client, response),
      requestedAt,
    );
  } catch (error) {
    const failure = classifyTokenFailure(error);
    const reason =
      failure.kind === 'transient'
        ? failure.reason
        : `${failure.error}${failure.description === undefined ? '' : `: ${failure.description}`}`;
    throw new LatchkeyError(
      failure.kind === 'transient'
        ? ErrorCode.REFRESH_TRANSIENT
        : failure.kind === 'client-rejected'
          ? ErrorCode.CLIENT_REJECTED
          : ErrorCode.LOGIN_REQUIRED,
      `the authorization code could not be redeemed (${secrets.scrub(reason)}).`,
      {
        server: options.server,
        retryable: failure.kind === 'transient',
        nextStep: `run \`${loginCommand(options.server)}\` again`,
        cause: error,
      },
    );
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, server: string, signal?: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new LatchkeyError(
            ErrorCode.CANCELLED,
            `the browser login did not finish within ${Math.round(ms / 1000)} s.`,
            {
              server,
              retryable: true,
              nextStep: `run \`${loginCommand(server)}\` again, or use --device on a machine without a browser`,
            },
          ),
        ),
      ms,
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

/** OAuth error codes are a restricted charset; anything else is not echoed back. */
function safeCode(code: string): string {
  return /^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$/.test(code) ? code : 'an invalid error code';
}

function firstSentence(error: LatchkeyError): string {
  const text = error.message.startsWith(`${error.server}: `)
    ? error.message.slice(`${error.server}: `.length)
    : error.message;
  return text.split(' Next step:')[0] ?? text;
}
