/**
 * Before the browser opens, ask the authorization endpoint whether it accepts this client and
 * redirect URI, without following its redirect.
 *
 * Why: RFC 6749 §4.1.2.1 forbids an AS to redirect when the client id or redirect URI is
 * invalid; it shows the user an error page instead. An AS that forgot a registered client
 * (restarted with in-memory storage, purged its DCR clients) therefore never calls the
 * loopback listener back, and the user would wait out the whole login timeout. One GET with
 * `redirect: 'manual'` tells the two cases apart in milliseconds.
 *
 * Verdicts:
 * - 3xx: accepted (to a login or consent page, or back to us), except a redirect to the
 *   AS's own error page whose `error` is a client error code: better-auth and many others
 *   answer an unknown client with `302 /api/auth/error?error=invalid_client`. That is
 *   refused. (A redirect back to our redirect URI is always accepted: the loopback listener
 *   receives whatever error it carries and fails the login at once.)
 * - 2xx: accepted. An AS that renders its login page in place has validated the client first.
 * - 400 and 401: refused. These are what an AS answers for an unknown client or redirect URI.
 * - another 4xx: refused only when the (bounded) body names a client or redirect URI error
 *   code; otherwise unknown, because a 403 or 404 may come from a bot filter in front of the
 *   AS that a real browser passes.
 * - 5xx, 429, network error, timeout: unknown. The browser gets its chance; the preflight
 *   must never be the reason a login that would work fails.
 */
import { decodeText, readBody } from '../body.js';
import { isAllowedUrl } from './metadata-http.js';

export type PreflightVerdict =
  | { kind: 'accepted'; status: number }
  | { kind: 'refused'; status: number; error?: string }
  | { kind: 'unknown'; reason: string };

export interface PreflightOptions {
  fetch?: typeof fetch | undefined;
  /** Default 10 000 ms. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** Bytes of an error body read to find an OAuth error code; the rest is discarded. */
const MAX_BODY_BYTES = 8 * 1024;
const DEFAULT_TIMEOUT_MS = 10_000;
/** Error codes an authorization endpoint uses for a client or redirect URI it will not serve. */
const CLIENT_ERRORS = [
  'invalid_client',
  'unauthorized_client',
  'invalid_redirect_uri',
  'redirect_uri_mismatch',
] as const;

export async function preflightAuthorization(
  url: string,
  options: PreflightOptions = {},
): Promise<PreflightVerdict> {
  const target = new URL(url);
  if (!isAllowedUrl(target)) return { kind: 'unknown', reason: 'not an https URL' };
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
  let response: Response;
  try {
    response = await (options.fetch ?? fetch)(target.href, {
      method: 'GET',
      redirect: 'manual',
      headers: { accept: 'text/html' },
      signal,
    });
  } catch (error) {
    if (options.signal?.aborted === true) throw error;
    return { kind: 'unknown', reason: error instanceof Error ? error.name : 'network error' };
  }
  const { status } = response;
  if (status < 400) {
    await response.body?.cancel().catch(() => undefined);
    const error = status >= 300 ? errorPageCode(response.headers.get('location'), target) : undefined;
    return error === undefined ? { kind: 'accepted', status } : { kind: 'refused', status, error };
  }
  if (status >= 500 || status === 429 || status === 408) {
    await response.body?.cancel().catch(() => undefined);
    return { kind: 'unknown', reason: `HTTP ${status}` };
  }
  const error = clientErrorIn(await boundedText(response));
  if (status === 400 || status === 401 || error !== undefined) {
    return { kind: 'refused', status, ...(error === undefined ? {} : { error }) };
  }
  return { kind: 'unknown', reason: `HTTP ${status}` };
}

/** The client error code of a redirect to somewhere other than our redirect URI, if any. */
function errorPageCode(location: string | null, request: URL): string | undefined {
  if (location === null) return undefined;
  let to: URL;
  try {
    to = new URL(location, request);
  } catch {
    return undefined;
  }
  const redirectUri = request.searchParams.get('redirect_uri');
  if (redirectUri !== null && `${to.origin}${to.pathname}` === redirectUri.split('?')[0]) return undefined;
  const error = to.searchParams.get('error');
  return CLIENT_ERRORS.find((code) => code === error);
}

/** The first client error code the body mentions (JSON or an HTML error page alike). */
function clientErrorIn(body: string): string | undefined {
  let first: { code: string; at: number } | undefined;
  for (const code of CLIENT_ERRORS) {
    const at = body.indexOf(code);
    if (at >= 0 && (first === undefined || at < first.at)) first = { code, at };
  }
  return first?.code;
}

async function boundedText(response: Response): Promise<string> {
  // A body that breaks off still leaves the status, and what came before, to judge by.
  return decodeText((await readBody(response.body, MAX_BODY_BYTES)).bytes);
}
