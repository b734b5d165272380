import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import { redeemCode, validateCallback } from '../login/authorization-code.js';
import { loginAction } from '../next-action.js';
import { clientContextForConfig } from '../oauth/client-credentials.js';
import { authorizationServerMetadata } from '../oauth/discovery.js';
import type { ConnectAttempt } from '../store/serve-contract.js';
import { clientConfigOf, type UpstreamConfig } from './config.js';
import { attemptId } from './connect.js';
import type { ServeContext } from './context.js';
import { HttpError } from './http.js';

/** Where the browser goes once the callback is handled. */
export interface CallbackOutcome {
  location: string;
  subject: string;
  upstream: string;
  /** The error code sent back to the app, when the connection failed. */
  error?: string;
}

/**
 * Finish a web login on whichever instance the AS redirected to: take the attempt named by
 * `state` (single use, unexpired), check the response, redeem the code with the attempt's
 * verifier, and save the credential under the subject the attempt was started for, never
 * any other. The browser then returns to the app's `return_to`, told the outcome in
 * `latchkey_status` (and `latchkey_error`).
 */
export async function completeConnect(ctx: ServeContext, params: URLSearchParams): Promise<CallbackOutcome> {
  const state = params.get('state');
  const attempt = state === null ? undefined : await ctx.store.takeConnectAttempt(attemptId(state));
  if (state === null || attempt === undefined) {
    throw new HttpError(400, {
      error: 'unknown_state',
      message:
        'this sign-in link has expired or was already used; start connecting again from the application.',
    });
  }
  const upstream = ctx.upstreams.get(attempt.upstream);
  try {
    if (upstream === undefined || upstream.url !== attempt.server) throw upstreamGone(attempt);
    await redeemAndSave(ctx, attempt, upstream, params, state);
    ctx.logger.info('connected', { subject: attempt.subject, upstream: attempt.upstream });
    return outcome(attempt, undefined);
  } catch (error) {
    const code = isLatchkeyError(error) ? error.code : 'INTERNAL';
    ctx.logger.warn('connect failed', { subject: attempt.subject, upstream: attempt.upstream, code });
    return outcome(attempt, code === ErrorCode.CANCELLED ? 'access_denied' : code.toLowerCase());
  }
}

async function redeemAndSave(
  ctx: ServeContext,
  attempt: ConnectAttempt,
  upstream: UpstreamConfig,
  params: URLSearchParams,
  state: string,
): Promise<void> {
  const server = attempt.server;
  const as = await authorizationServerMetadata(ctx.store, attempt.issuer, { server, fetch: ctx.fetch });
  const registration = await ctx.store.getRegistration(attempt.issuer);
  if (registration === undefined || registration.clientId !== attempt.clientId) throw upstreamGone(attempt);
  const client = await clientContextForConfig(as, registration, clientConfigOf(upstream), {
    fetch: ctx.fetch,
  });
  const validated = validateCallback(client, server, params, state);
  const grant = await redeemCode(client, validated, attempt.redirectUri, attempt.verifier, {
    server,
    resource: attempt.resource,
    requestTimeoutMs: ctx.requestTimeoutMs,
  });
  await ctx.manager.saveAcquired(server, {
    issuer: attempt.issuer,
    clientId: attempt.clientId,
    subject: attempt.subject,
    response: grant.response,
    requestedAt: grant.requestedAt,
    ...(attempt.scope === undefined ? {} : { requestedScopes: attempt.scope.split(' ') }),
    owned: true,
    resource: attempt.resource ?? null,
  });
}

/** The configuration or the client changed between the start and the callback. */
function upstreamGone(attempt: ConnectAttempt): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.LOGIN_REQUIRED,
    `the configuration of ${attempt.upstream} changed while this sign-in was under way.`,
    { server: attempt.server, retryable: false, next: loginAction(attempt.server, { again: true }) },
  );
}

function outcome(attempt: ConnectAttempt, error: string | undefined): CallbackOutcome {
  const location = new URL(attempt.returnTo);
  location.searchParams.set('latchkey_status', error === undefined ? 'connected' : 'error');
  location.searchParams.set('latchkey_upstream', attempt.upstream);
  if (error !== undefined) location.searchParams.set('latchkey_error', error);
  return {
    location: location.href,
    subject: attempt.subject,
    upstream: attempt.upstream,
    ...(error === undefined ? {} : { error }),
  };
}
