/**
 * latchkey's one redirect policy for MCP requests (every command and the proxy, streamable
 * HTTP and legacy SSE alike): a redirect is followed only within the origin of the request;
 * a redirect to another origin is refused with an error naming the server, and nothing is
 * sent there.
 *
 * Why refuse rather than follow without credentials: an MCP request carries the bearer token
 * and the user's `--header` values (API keys, tenant ids), and its answer is trusted as the
 * server's tools and results. Following a redirect elsewhere would either leak those or,
 * stripped of them, quietly talk to a different server in the user's name. A server that
 * moved is reached by its new URL, which the user chooses to trust.
 *
 * Within the origin the request goes on as it was, bearer token and custom headers included:
 * the same origin is the same server the user named. Fetch's method rules apply (303, and
 * 301/302 after POST, become a bodiless GET). A caller that asks for `redirect: 'manual'`
 * (the MCP SDK's transports do) gets same-origin redirects to follow itself, and the same
 * error for one to another origin.
 */
import { ErrorCode, LatchkeyError } from '../errors.js';
import type { WireFetch } from './http-client.js';

/** Fetch's own limit (Fetch Standard, "HTTP-redirect fetch" step 5). */
export const MAX_REDIRECTS = 20;
/** An origin named in an error is cut here: it comes from the network. */
const MAX_ORIGIN_SHOWN = 200;

/**
 * A fetch that follows redirects by `policy` only. `server` is the MCP server named in errors;
 * `send` the fetch underneath (default: the global fetch).
 */
export function sameOriginRedirects(server: string, send: typeof fetch = globalThis.fetch): typeof fetch {
  return async (input, init) => {
    const base = input instanceof Request ? input : undefined;
    const mode = init?.redirect ?? base?.redirect ?? 'follow';
    const target = new URL(base?.url ?? String(input));
    const origin = target.origin;
    if (mode !== 'follow') {
      // The caller follows by itself (the MCP SDK does, with its own rules): it still never
      // gets a redirect to another origin to follow.
      const response = await send(input, init);
      const location = isRedirect(response.status) ? response.headers.get('location') : null;
      if (location !== null && new URL(location, target).origin !== origin) {
        await discard(response);
        throw crossOrigin(server, new URL(location, target));
      }
      return response;
    }
    const first = await requestInit(base, init);
    const headers = new Headers(first.headers);
    return follow(server, target, first, {
      send: (to, current) => send(to.href, { ...current, headers, redirect: 'manual' }),
      bodyDropped: () => stripBodyHeaders(headers),
    });
  };
}

/** What the redirect loop reads of an answer: a fetch Response and a WireResponse alike. */
interface Answer {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  readonly body: { cancel(): unknown } | null;
}

interface Hops<I, R> {
  send(target: URL, init: I): Promise<R>;
  /** A redirect turned the request into a bodiless GET: its body headers go too. */
  bodyDropped(): void;
}

/** The one loop both faces share: same-origin hops only, at most MAX_REDIRECTS of them. */
async function follow<I extends { method?: string; body?: unknown }, R extends Answer>(
  server: string,
  start: URL,
  init: I,
  hops: Hops<I, R>,
): Promise<R> {
  let target = start;
  let current = init;
  for (let hop = 0; ; hop++) {
    const response = await hops.send(target, current);
    const location = response.headers.get('location');
    if (!isRedirect(response.status) || location === null) return response;
    const next = new URL(location, target);
    if (next.origin !== start.origin) {
      await discard(response);
      throw crossOrigin(server, next);
    }
    if (hop >= MAX_REDIRECTS) {
      await discard(response);
      throw tooMany(server);
    }
    const redirected = redirectedInit(current, response.status);
    // A stream body is gone after the first send; only a redirect that drops the body can go on.
    if (isStream(current.body) && redirected.body !== undefined) return response;
    await discard(response);
    if (redirected.body === undefined) hops.bodyDropped();
    current = redirected;
    target = next;
  }
}

/** The policy for the MCP wires' own requests (http-client.ts), which always follow. */
export function sameOriginWireRedirects(server: string, send: WireFetch): WireFetch {
  return (url, init) => {
    const headers = { ...init.headers };
    return follow(server, url, init, {
      send: (to, current) => send(to, { ...current, headers, redirect: 'manual' }),
      bodyDropped: () => {
        for (const name of Object.keys(headers))
          if (BODY_HEADERS.includes(name.toLowerCase())) delete headers[name];
      },
    });
  };
}

/** The init a Request input stands for, its body read so that it can be sent again. */
async function requestInit(base: Request | undefined, init: RequestInit | undefined): Promise<RequestInit> {
  if (base === undefined) return { ...init };
  const merged: RequestInit = {
    method: base.method,
    headers: base.headers,
    signal: base.signal,
    ...init,
  };
  if (merged.body === undefined && base.body !== null) merged.body = await base.arrayBuffer();
  return merged;
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

/** Fetch Standard "HTTP-redirect fetch" step 12: 303, and 301/302 after POST, become a bodiless GET. */
function redirectedInit<I extends { method?: string; body?: unknown }>(init: I, status: number): I {
  const method = (init.method ?? 'GET').toUpperCase();
  if (!(status === 303 && method !== 'HEAD') && !((status === 301 || status === 302) && method === 'POST'))
    return init;
  const { body: _body, ...rest } = init;
  return { ...rest, method: 'GET' } as I;
}

function isStream(body: unknown): boolean {
  return (
    body instanceof ReadableStream ||
    (typeof body === 'object' && body !== null && Symbol.asyncIterator in body && !(body instanceof Blob))
  );
}

const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language'];

function stripBodyHeaders(headers: Headers): void {
  for (const name of BODY_HEADERS) headers.delete(name);
}

async function discard(response: Answer): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // Gone already.
  }
}

function crossOrigin(server: string, to: URL): LatchkeyError {
  // Only the origin (or, for javascript:, file: and the like, the scheme) is shown: the path
  // and query of a Location header are the server's to fill with anything.
  const origin = to.origin === 'null' ? `a ${to.protocol} URL` : to.origin;
  const shown = origin.length > MAX_ORIGIN_SHOWN ? `${origin.slice(0, MAX_ORIGIN_SHOWN)}…` : origin;
  return new LatchkeyError(
    ErrorCode.MCP_FAILED,
    `the MCP server redirected to another origin (${shown}); latchkey does not follow cross-origin redirects for MCP requests, so nothing was sent there.`,
    {
      server,
      retryable: false,
      next: {
        kind: 'configure',
        server,
        detail: 'if the server has moved and you trust its new address, use that URL instead',
      },
    },
  );
}

function tooMany(server: string): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.MCP_FAILED,
    `the MCP server redirected more than ${MAX_REDIRECTS} times.`,
    {
      server,
      retryable: false,
      next: { kind: 'diagnose', server },
    },
  );
}
