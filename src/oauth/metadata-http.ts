/**
 * The one HTTP request every step of the discovery chain makes: GET a JSON metadata document.
 *
 * - Every request has a timeout (default 15 s) on top of the caller's signal.
 * - Plain http only to loopback hosts; anything else is refused before a byte is sent.
 * - Redirects are followed only within the same origin, at most 3 times (as the MCP SDK's
 *   `fetchWithinOrigin` does); a cross-origin redirect counts as "no document here".
 * - The body is capped at 256 KiB, so a hostile server cannot make us buffer gigabytes.
 *
 * The outcome is a value, not an exception, because the callers decide per position whether
 * a missing document means "try the next URL" or "give up".
 */
import { decodeText, readBody } from '../body.js';
import { ErrorCode, LatchkeyError } from '../errors.js';
import type { NextAction } from '../next-action.js';
import { isLoopbackUrl } from './loopback.js';
import { transientAsError } from './oauth-errors.js';
import { parseRetryAfter } from './token-error.js';

export const DEFAULT_DISCOVERY_TIMEOUT_MS = 15_000;
const MAX_BODY_BYTES = 256 * 1024;
const MAX_REDIRECTS = 3;

export interface MetadataRequestOptions {
  /** The canonical MCP server URL, named by errors. */
  server: string;
  fetch?: typeof fetch | undefined;
  signal?: AbortSignal | undefined;
  /** Per request. Default 15 000 ms. */
  timeoutMs?: number | undefined;
}

export type MetadataFetchResult =
  /** A 200 whose body is a JSON object. `url` is where it was finally served from. */
  | { kind: 'document'; url: string; document: Record<string, unknown> }
  /** No metadata document here: 4xx, a cross-origin redirect, or a 200 that is not a JSON object. */
  | { kind: 'absent'; url: string; detail: string }
  /** Might work later: network error, timeout, 5xx, 408, 429. */
  | {
      kind: 'transient';
      url: string;
      detail: string;
      status?: number;
      retryAfterMs?: number;
      cause?: unknown;
    };

/** `new URL` without the exception (URL.parse needs Node 22). */
export function parseUrl(text: string, base?: string | URL): URL | undefined {
  try {
    return new URL(text, base);
  } catch {
    return undefined;
  }
}

/** https anywhere, http only to a loopback host. */
export function isAllowedUrl(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackUrl(url));
}

/** GET `url` as a metadata document. Throws only when the caller's signal aborts. */
export async function fetchMetadataDocument(
  url: URL,
  options: MetadataRequestOptions,
): Promise<MetadataFetchResult> {
  let target = new URL(url.href);
  for (let hop = 0; ; hop++) {
    if (!isAllowedUrl(target)) {
      return { kind: 'absent', url: target.href, detail: 'refused: plain http to a non-loopback host' };
    }
    const answer = await request(target, options);
    if ('kind' in answer) return answer;
    const { response } = answer;
    if (response.status >= 300 && response.status < 400) {
      await discard(response);
      const location = response.headers.get('location');
      const next = location === null ? undefined : parseUrl(location, target);
      if (next === undefined || next.origin !== target.origin || hop >= MAX_REDIRECTS) {
        return { kind: 'absent', url: target.href, detail: `HTTP ${response.status} redirect not followed` };
      }
      target = next;
      continue;
    }
    return classify(target.href, response, options);
  }
}

async function request(
  url: URL,
  options: MetadataRequestOptions,
): Promise<{ response: Response } | MetadataFetchResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DISCOVERY_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
  try {
    const response = await (options.fetch ?? fetch)(url.href, {
      method: 'GET',
      headers: { accept: 'application/json' },
      redirect: 'manual',
      signal,
    });
    return { response };
  } catch (cause) {
    throwIfCancelled(options);
    const detail = timeout.aborted ? `no answer within ${timeoutMs} ms` : 'network error';
    return { kind: 'transient', url: url.href, detail, cause };
  }
}

async function classify(
  url: string,
  response: Response,
  options: MetadataRequestOptions,
): Promise<MetadataFetchResult> {
  const { status } = response;
  if (status >= 500 || status === 408 || status === 429) {
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
    const detail = `HTTP ${status}${await excerptOf(response, options)}`;
    return {
      kind: 'transient',
      url,
      detail,
      status,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    };
  }
  if (status !== 200) {
    await discard(response);
    return { kind: 'absent', url, detail: `HTTP ${status}` };
  }
  let text: string;
  try {
    text = await readCapped(response, MAX_BODY_BYTES);
  } catch (cause) {
    throwIfCancelled(options);
    if (cause instanceof BodyTooLarge) return { kind: 'absent', url, detail: cause.message };
    return { kind: 'transient', url, detail: 'the response body was cut off', cause };
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return { kind: 'absent', url, detail: `not JSON${excerpt(text)}` };
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    return { kind: 'absent', url, detail: 'not a JSON object' };
  }
  return { kind: 'document', url, document: document as Record<string, unknown> };
}

class BodyTooLarge extends Error {}

/** The body as text; beyond `limit` bytes it throws BodyTooLarge, or with `truncate` stops there. */
async function readCapped(response: Response, limit: number, truncate = false): Promise<string> {
  const read = await readBody(response.body, limit);
  if (read.error !== undefined) throw read.error;
  if (read.over && !truncate) throw new BodyTooLarge(`the body exceeds ${limit} bytes`);
  return decodeText(read.bytes);
}

async function excerptOf(response: Response, options: MetadataRequestOptions): Promise<string> {
  try {
    return excerpt(await readCapped(response, 4096, true));
  } catch {
    throwIfCancelled(options);
    return '';
  }
}

/**
 * A short, sanitized excerpt of an untrusted body for an error message: at most 60
 * characters, control characters replaced, JSON-quoted so it cannot forge log lines.
 */
export function excerpt(text: string): string {
  const flat = Array.from(text.slice(0, 200), (c) => (isControl(c) ? ' ' : c))
    .join('')
    .replace(/ {2,}/g, ' ')
    .trim();
  if (flat.length === 0) return '';
  return ` (body starts ${JSON.stringify(flat.length > 60 ? `${flat.slice(0, 60)}…` : flat)})`;
}

function isControl(char: string): boolean {
  const code = char.codePointAt(0) ?? 0;
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029;
}

/** Quote an untrusted value (an issuer, a resource) for an error message, shortened. */
export function quote(value: unknown): string {
  const text = typeof value === 'string' ? value : String(JSON.stringify(value) ?? typeof value);
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => undefined);
}

function throwIfCancelled(options: MetadataRequestOptions): void {
  if (options.signal?.aborted !== true) return;
  throw new LatchkeyError(ErrorCode.CANCELLED, 'discovery was cancelled.', {
    server: options.server,
    retryable: false,
    cause: options.signal.reason,
  });
}

/**
 * Whether we may send a request to `url` on behalf of `server`: https or loopback http, no
 * userinfo, and no loopback target named by a non-loopback server (a remote server must not
 * be able to aim our requests at services on this machine).
 */
export function isUsableTarget(url: URL, server: string): boolean {
  if (!isAllowedUrl(url) || url.username !== '' || url.password !== '') return false;
  return !isLoopbackUrl(url) || isLoopbackUrl(server);
}

/**
 * Identifier comparison for RFC 8414 §3.3 (issuer) and RFC 9728 §3.3 (resource): the values
 * must be identical. The one difference tolerated is a lone trailing `/` after an origin
 * (`https://as.example.com` vs `https://as.example.com/`): RFC 3986 §6.2.3 makes an empty
 * path and `/` equivalent for http(s), and both spellings produce the same well-known URLs,
 * so the document was fetched from exactly where either spelling points. Case, ports, other
 * paths and percent-encoding must match exactly.
 */
export function sameIdentifier(a: string, b: string): boolean {
  return a === b || bareOrigin(a) === bareOrigin(b);
}

function bareOrigin(value: string): string {
  return /^https?:\/\/[^/?#]+\/$/i.test(value) ? value.slice(0, -1) : value;
}

/** A DISCOVERY_FAILED error; permanent unless `retryable` says otherwise. */
export function discoveryError(
  server: string,
  message: string,
  options: { retryable?: boolean; next: NextAction; cause?: unknown },
): LatchkeyError {
  return new LatchkeyError(ErrorCode.DISCOVERY_FAILED, message, {
    server,
    retryable: options.retryable ?? false,
    next: options.next,
    cause: options.cause,
  });
}

/** The error for a transient fetch outcome: AS_UNAVAILABLE, or RATE_LIMITED after a 429. */
export function unreachable(
  server: string,
  what: string,
  result: Extract<MetadataFetchResult, { kind: 'transient' }>,
): LatchkeyError {
  return transientAsError(server, `could not fetch ${what} from ${result.url}: ${result.detail}.`, result, {
    detail: `check the network and that ${new URL(result.url).host} is up, then retry`,
    cause: result.cause,
  });
}
