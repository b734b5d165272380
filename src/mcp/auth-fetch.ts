/**
 * A `fetch` for MCP transports that carries latchkey's bearer token (AUTH-54, AUTH-55) and
 * answers the server's 401 and 403 challenges (AUTH-08, AUTH-63..AUTH-66):
 *
 * - Same origin as the MCP server only: requests to any other origin go without the token
 *   (AUTH-57), and no request follows a redirect to another origin (redirect-policy.ts).
 * - The first request is sent with whatever token the manager holds without a login; with
 *   none, it goes out bare so that the server's 401 challenge (resource_metadata, scope) can
 *   drive discovery and scope selection (AUTH-05, AUTH-31).
 * - 401: the manager is told which token was rejected and gets the challenge; it refreshes or
 *   logs in, and the request is sent once more. A 401 means the request was not processed,
 *   so replaying it is safe.
 * - 403 `insufficient_scope`: step-up through the manager (union of scopes, a new
 *   authorization rather than a refresh), then the request is sent again; at most
 *   `maxStepUps` times in a row per operation (method, path and JSON-RPC method), after
 *   which the 403 is the caller's.
 *
 * Bodies are replayed as given (strings, bytes, Blob, URLSearchParams, FormData); a Request
 * body is buffered before the first send. A stream body cannot be replayed: the manager still
 * learns of the challenge, so the caller's own retry carries the new token, but the response
 * is returned as it came.
 *
 * DPoP (RFC 9449, docs/dpop.md): a token whose type is `DPoP` goes as `Authorization: DPoP`
 * with a fresh proof (`htm`, `htu`, `ath`) on every request, retries included; it is never sent
 * as a bearer token. A `401 DPoP error="use_dpop_nonce"` is answered once with a new proof
 * carrying the server's nonce, which the signer keeps for the origin.
 *
 * Errors of the manager (LOGIN_REQUIRED when no login may run, a login the user abandoned, an
 * AS that is down) reject the fetch: they say more than the server's 401 would.
 */
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import type { GetTokenOptions, TokenSource } from './credentials.js';
import type { AccessToken } from '../lifecycle/token-cache.js';
import type { DPoPSigner } from '../oauth/dpop-proof.js';
import { bearerChallenge, isDPoPNonceChallenge } from '../oauth/www-authenticate.js';
import type { WireFetch } from './http-client.js';
import { sameOriginRedirects } from './redirect-policy.js';

export interface AuthFetchOptions {
  /** Where tokens come from; its acquisition hook runs logins and step-ups. */
  manager: TokenSource;
  /** The fetch that sends the requests. Default: the global fetch. */
  fetch?: typeof fetch;
  /** Step-ups in a row for one operation before a 403 is returned. Default 2. */
  maxStepUps?: number;
  /** Whose credential. Default: the manager's subject. */
  subject?: string;
  /**
   * May a 401 start an interactive login? Default: yes when the manager has an acquisition
   * hook. The proxy says no and runs logins itself, so it can answer the host while a device
   * login is pending. Step-up after a 403 stays interactive: it needs the challenged scopes.
   */
  interactive?: boolean;
}

/** Bodies larger than this are not parsed for their JSON-RPC method. */
const MAX_PARSED_BODY = 1024 * 1024;
/** Operations remembered for the step-up cap; the oldest are forgotten beyond this. */
const MAX_TRACKED_OPERATIONS = 1000;

/** A `fetch` that authenticates requests to `server` with tokens from `options.manager`. */
export function createAuthFetch(server: string | URL, options: AuthFetchOptions): typeof fetch {
  const auth = authContext(server, options);
  const send = sameOriginRedirects(String(server), options.fetch ?? globalThis.fetch);
  return async function authFetch(input, init) {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.origin !== auth.origin) return send(input, init);
    const request = await toReplayable(input, init);
    return authorized(auth, {
      signal: request.signal,
      replayable: request.replayable,
      // Parsing the body for its method costs on every request; only step-ups need it.
      operation: () => operationKey(request.method, url, request.init.body),
      send: async (token) =>
        sendWithToken(send, url, request, await credentialHeaders(auth, token, request.method, url)),
      url,
    });
  };
}

/**
 * The same for the MCP wires' own requests (streamable-http.ts, legacy-sse.ts), on a
 * WireFetch (http-client.ts) that already follows latchkey's redirect policy. Their bodies
 * are strings, so every request can be sent again.
 */
export function createAuthWire(
  server: string | URL,
  options: Omit<AuthFetchOptions, 'fetch'>,
  send: WireFetch,
): WireFetch {
  const auth = authContext(server, options);
  return (url, init) => {
    if (url.origin !== auth.origin) return send(url, init);
    return authorized(auth, {
      signal: init.signal,
      replayable: true,
      operation: () => operationKey(init.method, url, init.body),
      send: async (token) => {
        const headers = await credentialHeaders(auth, token, init.method, url);
        return send(
          url,
          headers === undefined ? init : { ...init, headers: { ...init.headers, ...headers } },
        );
      },
      url,
    });
  };
}

interface AuthContext {
  server: string | URL;
  origin: string;
  options: Omit<AuthFetchOptions, 'fetch'>;
  maxStepUps: number;
  /** Step-ups done in a row per operation. */
  stepUps: Map<string, number>;
  /** The source's DPoP signer, asked for at the first DPoP token. */
  signer?: Promise<DPoPSigner>;
}

/**
 * The Authorization header for `token` (and its DPoP proof, for a DPoP token), or undefined
 * to go bare.
 */
async function credentialHeaders(
  auth: AuthContext,
  token: AccessToken | undefined,
  method: string,
  url: URL,
): Promise<Record<string, string> | undefined> {
  if (token === undefined) return undefined;
  if (token.tokenType !== 'DPoP') return { authorization: `Bearer ${token.token}` };
  const signer = await signerFor(auth);
  return { authorization: `DPoP ${token.token}`, dpop: signer.proof(method, url, token.token) };
}

function signerFor(auth: AuthContext): Promise<DPoPSigner> {
  const source = auth.options.manager;
  if (source.dpopSigner === undefined) {
    return Promise.reject(
      new LatchkeyError(
        ErrorCode.INVALID_INPUT,
        `the token for ${String(auth.server)} is DPoP-bound, but its token source has no DPoP signer.`,
        {
          retryable: false,
          server: String(auth.server),
          next: { kind: 'configure', detail: 'give the token source a dpopSigner()' },
        },
      ),
    );
  }
  return (auth.signer ??= source.dpopSigner());
}

function authContext(server: string | URL, options: Omit<AuthFetchOptions, 'fetch'>): AuthContext {
  const origin = new URL(String(server)).origin;
  return { server, origin, options, maxStepUps: options.maxStepUps ?? 2, stepUps: new Map() };
}

/** What the auth loop reads of an answer: a fetch Response and a WireResponse alike. */
interface Challenged {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  readonly body: { cancel(): unknown } | null;
}

/** One request as the auth loop sends it: with a token, as often as the loop needs. */
interface AuthCall<R> {
  signal: AbortSignal | null | undefined;
  replayable: boolean;
  /** `METHOD path rpc-method`: what the step-up cap counts per (AUTH-66). */
  operation(): string;
  send(token: AccessToken | undefined): Promise<R>;
  /** Where the request goes: a DPoP nonce is kept for its origin. */
  url: URL;
}

/** The token on the request; a 401 refreshes once, a 403 `insufficient_scope` steps up. */
async function authorized<R extends Challenged>(auth: AuthContext, call: AuthCall<R>): Promise<R> {
  const { server, options, stepUps } = auth;
  let operation: string | undefined;
  const op = (): string => (operation ??= call.operation());
  let token = await currentToken(server, options, call.signal);
  let retried401 = false;
  let retriedNonce = false;
  for (;;) {
    const response = await call.send(token);
    let next: AccessToken;
    if (token?.tokenType === 'DPoP' && (await signerFor(auth)).rememberNonce(call.url, response.headers)) {
      // §9: the proof lacked the server's (new) nonce; the same token goes again, once.
      if (response.status === 401 && !retriedNonce && call.replayable && isDPoPNonceChallenge(response)) {
        retriedNonce = true;
        await discard(response);
        continue;
      }
    }
    if (response.status === 401 && !retried401) {
      retried401 = true;
      const challenge = bearerChallenge(response);
      next = await orDiscard(response, () =>
        options.manager.getToken(
          server,
          withSignal(options, call.signal, {
            ...(options.interactive === undefined ? {} : { interactive: options.interactive }),
            ...(token === undefined ? {} : { rejectedToken: token.token }),
            ...(challenge === undefined ? {} : { challenge }),
          }),
        ),
      );
      if (!call.replayable) return response;
    } else {
      const challenge = response.status === 403 ? bearerChallenge(response) : undefined;
      if (challenge?.error !== 'insufficient_scope') {
        if (stepUps.size > 0) stepUps.delete(op());
        return response;
      }
      const done = stepUps.get(op()) ?? 0;
      if (done >= auth.maxStepUps) return response;
      remember(stepUps, op(), done + 1);
      next = await orDiscard(response, () =>
        options.manager.getToken(server, withSignal(options, call.signal, { challenge })),
      );
      // The manager already holds a token with these scopes: sending it again cannot help.
      if (next.token === token?.token || !call.replayable) return response;
    }
    await discard(response);
    token = next;
  }
}

function withSignal(
  options: Omit<AuthFetchOptions, 'fetch'>,
  signal: AbortSignal | null | undefined,
  extra: GetTokenOptions,
): GetTokenOptions {
  return {
    ...extra,
    ...(options.subject === undefined ? {} : { subject: options.subject }),
    ...(signal == null ? {} : { signal }),
  };
}

/** The token the source holds without a login, or undefined to go bare. */
async function currentToken(
  server: string | URL,
  options: Omit<AuthFetchOptions, 'fetch'>,
  signal: AbortSignal | null | undefined,
): Promise<AccessToken | undefined> {
  try {
    return await options.manager.getToken(server, withSignal(options, signal, { interactive: false }));
  } catch (error) {
    // No usable credential without a login: go bare and let the server's challenge guide it.
    if (isLatchkeyError(error) && error.code === ErrorCode.LOGIN_REQUIRED) return undefined;
    throw error;
  }
}

/** A request taken apart so that it can be sent more than once. */
interface ReplayableRequest {
  init: RequestInit;
  method: string;
  headers: Headers;
  signal: AbortSignal | null | undefined;
  /** The caller's redirect mode; `follow` is done by redirect-policy.ts, within the origin only. */
  redirect: NonNullable<RequestInit['redirect']>;
  replayable: boolean;
}

async function toReplayable(
  input: string | URL | Request,
  init: RequestInit | undefined,
): Promise<ReplayableRequest> {
  const base = input instanceof Request ? input : undefined;
  let body = init?.body;
  if (body === undefined && base?.body != null) body = await base.arrayBuffer();
  const method = (init?.method ?? base?.method ?? 'GET').toUpperCase();
  const headers = new Headers(init?.headers ?? base?.headers);
  const signal = init?.signal ?? base?.signal;
  const redirect = init?.redirect ?? base?.redirect ?? 'follow';
  const merged: RequestInit = { ...init, method };
  if (body != null) merged.body = body;
  if (signal != null) merged.signal = signal;
  return { init: merged, method, headers, signal, redirect, replayable: !isStream(body) };
}

function isStream(body: unknown): boolean {
  return (
    body instanceof ReadableStream ||
    (typeof body === 'object' && body !== null && Symbol.asyncIterator in body && !(body instanceof Blob))
  );
}

/** `METHOD path rpc-method`: what the step-up cap counts per (AUTH-66). */
function operationKey(method: string, url: URL, body: RequestInit['body']): string {
  return `${method} ${url.pathname} ${jsonRpcMethod(body)}`;
}

/** The JSON-RPC method(s) of a JSON body, or '' when it is not one. */
function jsonRpcMethod(body: RequestInit['body']): string {
  let text: string | undefined;
  if (typeof body === 'string') text = body;
  else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) text = new TextDecoder().decode(body);
  if (text === undefined || text.length > MAX_PARSED_BODY) return '';
  try {
    const parsed: unknown = JSON.parse(text);
    const messages: unknown[] = Array.isArray(parsed) ? parsed : [parsed];
    return messages
      .map((m) => (typeof m === 'object' && m !== null ? (m as { method?: unknown }).method : undefined))
      .filter((m): m is string => typeof m === 'string')
      .join(',');
  } catch {
    return '';
  }
}

/**
 * Send with the token. Redirects follow latchkey's one policy (redirect-policy.ts): within
 * the origin, token included; to another origin, never.
 */
async function sendWithToken(
  send: typeof fetch,
  url: URL,
  request: ReplayableRequest,
  credential: Record<string, string> | undefined,
): Promise<Response> {
  const headers = new Headers(request.headers);
  for (const [name, value] of Object.entries(credential ?? {})) headers.set(name, value);
  return send(url.href, { ...request.init, headers, redirect: request.redirect });
}

/** Run `action`; if it throws, the response it was about is discarded first. */
async function orDiscard<T>(response: Challenged, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    await discard(response);
    throw error;
  }
}

async function discard(response: Challenged): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // Gone already.
  }
}

function remember(map: Map<string, number>, key: string, value: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_TRACKED_OPERATIONS) {
    const oldest = map.keys().next();
    if (oldest.done !== true) map.delete(oldest.value);
  }
}
