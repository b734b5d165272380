import * as oauth from 'oauth4webapi';

import { secrets } from '../redact.js';
import { ErrorCode, LatchkeyError, loginRequired } from '../errors.js';
import { sleep as defaultSleep } from '../lifecycle/lease.js';
import { printable } from '../network-text.js';
import type { ClientContext } from '../oauth/client-context.js';
import type { DevicePrompt } from '../oauth/types.js';
import { type GrantResult, grantResult, processTokenResponse } from '../oauth/grants.js';
import { isUserFacingUrl } from '../oauth/loopback.js';
import { asRequestError } from '../oauth/oauth-errors.js';
import { loginAction } from '../next-action.js';

/**
 * The device authorization grant (RFC 8628), latchkey's headless login: the user approves
 * on any other device while this process polls the token endpoint. Not part of the MCP
 * spec (spec §1.12); the same `resource` rules as the browser flow apply.
 */
export interface DeviceAuthorizationOptions {
  ctx: ClientContext;
  /** RFC 8707 resource, sent with both requests; undefined only for IdPs that reject it. */
  resource: string | undefined;
  scope?: string | undefined;
  /** The server named in errors. Default: `resource`, else the AS issuer. */
  server?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Show the user what to do. Called once, before polling starts. */
  prompt: (prompt: DevicePrompt) => void;
  /** Waits between polls. Tests may shorten it; production leaves the default. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Timeout of each HTTP request. Default 30 000 ms. */
  requestTimeoutMs?: number;
}

/** RFC 8628 §3.2: without `interval`, poll every 5 s. */
export const DEFAULT_POLL_INTERVAL_MS = 5_000;
/** RFC 8628 §3.5: on `slow_down`, wait 5 s longer from then on. */
export const SLOW_DOWN_STEP_MS = 5_000;
/** Consecutive transient polling failures tolerated before giving up. */
const MAX_TRANSIENT_POLLS = 5;

export async function deviceAuthorization(options: DeviceAuthorizationOptions): Promise<GrantResult> {
  const { ctx } = options;
  const server = options.server ?? options.resource ?? ctx.as.issuer;
  const sleep = options.sleep ?? defaultSleep;
  const started = Date.now();
  const authorization = await requestDeviceCode(options, server);
  secrets.add(authorization.device_code);
  assertVerificationUris(authorization, ctx.as.issuer, server);
  const expiresAt = started + authorization.expires_in * 1000;
  // These strings come from the AS and end up on a terminal: no control characters.
  const prompt: DevicePrompt = {
    verificationUri: printable(authorization.verification_uri),
    userCode: printable(authorization.user_code),
    expiresAt,
  };
  if (authorization.verification_uri_complete !== undefined) {
    prompt.verificationUriComplete = printable(authorization.verification_uri_complete);
  }
  options.prompt(prompt);

  let intervalMs =
    authorization.interval === undefined ? DEFAULT_POLL_INTERVAL_MS : authorization.interval * 1000;
  let transientFailures = 0;
  for (;;) {
    if (Date.now() + intervalMs >= expiresAt) throw expired(server, prompt);
    await sleep(intervalMs, options.signal).catch((error: unknown) => {
      throw cancelled(server, error);
    });
    const outcome = await poll(options, authorization.device_code, server, prompt);
    if (outcome.kind === 'tokens') return outcome.result;
    if (outcome.kind === 'slow-down') intervalMs += SLOW_DOWN_STEP_MS;
    if (outcome.kind === 'transient') {
      if (++transientFailures >= MAX_TRANSIENT_POLLS) throw outcome.error;
      intervalMs = Math.max(intervalMs, outcome.retryAfterMs ?? 0);
    } else {
      transientFailures = 0;
    }
  }
}

async function requestDeviceCode(
  options: DeviceAuthorizationOptions,
  server: string,
): Promise<oauth.DeviceAuthorizationResponse> {
  const { ctx } = options;
  if (typeof ctx.as.device_authorization_endpoint !== 'string') {
    throw new LatchkeyError(
      ErrorCode.DISCOVERY_FAILED,
      `the authorization server ${ctx.as.issuer} does not support device login (no device_authorization_endpoint).`,
      {
        server,
        retryable: false,
        next: loginAction(server, { device: false }),
      },
    );
  }
  const params = new URLSearchParams();
  if (options.scope !== undefined && options.scope !== '') params.set('scope', options.scope);
  if (options.resource !== undefined) params.set('resource', options.resource);
  try {
    const response = await oauth.deviceAuthorizationRequest(
      ctx.as,
      ctx.client,
      ctx.clientAuth,
      params,
      ctx.requestOptions(requestSignal(options)),
    );
    return await oauth.processDeviceAuthorizationResponse(ctx.as, ctx.client, response);
  } catch (error) {
    throw failure(options, server, error, 'the device login could not be started');
  }
}

/**
 * The verification URIs are shown to the user, QR-encoded and handed to MCP hosts, so they
 * follow the browser login's rule (http(s), https unless loopback). A bad one refuses the
 * whole flow, including a bad `verification_uri_complete` next to a good `verification_uri`:
 * an AS that sends either is not one to sign in at. The URI itself is not echoed.
 */
function assertVerificationUris(
  authorization: oauth.DeviceAuthorizationResponse,
  issuer: string,
  server: string,
): void {
  const complete = authorization.verification_uri_complete;
  const bad = !isUserFacingUrl(authorization.verification_uri)
    ? 'verification_uri'
    : complete !== undefined && !isUserFacingUrl(complete)
      ? 'verification_uri_complete'
      : undefined;
  if (bad === undefined) return;
  throw new LatchkeyError(
    ErrorCode.DISCOVERY_FAILED,
    `the authorization server ${issuer} sent a device login ${bad} that is not an https URL (http only on loopback), so latchkey refused the device login.`,
    {
      server,
      retryable: false,
      next: loginAction(server, {
        device: false,
        detail: 'or ask the server operator to fix the device authorization endpoint',
      }),
    },
  );
}

type PollOutcome =
  | { kind: 'tokens'; result: GrantResult }
  | { kind: 'pending' }
  | { kind: 'slow-down' }
  | { kind: 'transient'; error: LatchkeyError; retryAfterMs?: number };

async function poll(
  options: DeviceAuthorizationOptions,
  deviceCode: string,
  server: string,
  prompt: DevicePrompt,
): Promise<PollOutcome> {
  const { ctx } = options;
  const params = new URLSearchParams();
  if (options.resource !== undefined) params.set('resource', options.resource);
  const requestedAt = Date.now();
  try {
    const response = await oauth.deviceCodeGrantRequest(ctx.as, ctx.client, ctx.clientAuth, deviceCode, {
      ...ctx.requestOptions(requestSignal(options)),
      additionalParameters: params,
    });
    return {
      kind: 'tokens',
      result: grantResult(
        await processTokenResponse(ctx, response, (r) =>
          oauth.processDeviceCodeResponse(ctx.as, ctx.client, r),
        ),
        requestedAt,
      ),
    };
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) {
      switch (error.error) {
        case 'authorization_pending':
          return { kind: 'pending' };
        case 'slow_down':
          return { kind: 'slow-down' };
        case 'access_denied':
          throw loginRequired(server, `you denied access at ${prompt.verificationUri}`, error);
        case 'expired_token':
          throw expired(server, prompt, error);
      }
    }
    const translated = failure(options, server, error, 'the device login failed');
    if (!translated.retryable) throw translated;
    // A rate limit names when to come back; the polling interval stretches to it.
    return {
      kind: 'transient',
      error: translated,
      ...(translated.retryAt === undefined
        ? {}
        : { retryAfterMs: Math.max(0, translated.retryAt - Date.now()) }),
    };
  }
}

function failure(
  options: DeviceAuthorizationOptions,
  server: string,
  error: unknown,
  what: string,
): LatchkeyError {
  const request = {
    server,
    what,
    cancelled: 'the device login was cancelled.',
    signal: options.signal,
    retryNext: loginAction(server, { device: true, again: true }),
  };
  return asRequestError(
    error,
    request,
    (refused) =>
      new LatchkeyError(
        refused.kind === 'client-rejected' ? ErrorCode.CLIENT_REJECTED : ErrorCode.LOGIN_REQUIRED,
        `${what}: the authorization server ${options.ctx.as.issuer} answered ${refused.code}${refused.description}.`,
        { server, retryable: false, next: loginAction(server, { again: true }), cause: refused.cause },
      ),
  );
}

function expired(server: string, prompt: DevicePrompt, cause?: unknown): LatchkeyError {
  return loginRequired(
    server,
    `the device code ${prompt.userCode} expired before the sign-in at ${prompt.verificationUri} was completed`,
    cause,
  );
}

function cancelled(server: string, cause: unknown): LatchkeyError {
  return new LatchkeyError(ErrorCode.CANCELLED, 'the device login was cancelled.', {
    server,
    retryable: false,
    cause,
  });
}

function requestSignal(options: DeviceAuthorizationOptions): AbortSignal {
  const timeout = AbortSignal.timeout(options.requestTimeoutMs ?? 30_000);
  return options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
}
