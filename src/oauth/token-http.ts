/**
 * A `fetch` for the fleet refresher's token requests, on node:http(s) with a keep-alive agent,
 * that hands oauth4webapi an answer already read whole (at most `limit` bytes).
 *
 * Why: with the store's statements batched, a CPU profile of the refresher put about half of
 * its time in the global fetch (undici's request and header objects, a web stream per body, a
 * tee for the copy grants.ts keeps) and in re-reading that stream for the size cap. A token
 * answer is small and read whole anyway, so here it is read once, capped while it arrives, and
 * wrapped in a Response over the bytes (buffered-response.ts); bounded-fetch.ts and grants.ts
 * know such a Response (`bufferedCopy`) and neither read nor copy its stream again.
 *
 * What fetch did that is kept: a network failure rejects with a TypeError whose `cause` is the
 * system error (token-error.ts classifies it as transient); an abort rejects with the signal's
 * reason; redirects are not followed (oauth4webapi asks for `redirect: 'manual'`); gzip,
 * deflate and br answers are decoded. A request is never sent twice here. Like the MCP client
 * (src/mcp/http-client.ts), a connection is chosen only after the rest of this turn's I/O, so a
 * connection the AS has just closed is seen closed first.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import * as zlib from 'node:zlib';

import { readBody } from '../body.js';
import { pollFirst, sendRequest, type Transport, transports } from '../node-http.js';
import { BufferedResponse } from './buffered-response.js';

/**
 * A fetch whose answers are read whole, up to `limit` bytes. Past the limit (declared or
 * read) the Response it returns is an ordinary one that bounded-fetch.ts then refuses with
 * RESPONSE_TOO_LARGE naming the server, as it would refuse the global fetch's.
 */
export function createTokenFetch(limit: number): typeof fetch {
  const transportFor = transports();
  const tokenFetch = async (
    input: Parameters<typeof fetch>[0],
    init: RequestInit = {},
  ): Promise<Response> => {
    const body = init.body;
    // oauth4webapi sends a URL string and a form (or nothing); anything else goes to fetch.
    if (typeof input !== 'string' && !(input instanceof URL)) return fetch(input, init);
    if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof URLSearchParams))
      return fetch(input, init);
    const url = new URL(input);
    init.signal?.throwIfAborted();
    const transport = await transportFor(url.protocol);
    await pollFirst();
    init.signal?.throwIfAborted();
    const answer = await send(
      url,
      init,
      body === undefined || body === null ? undefined : String(body),
      transport,
    );
    return read(answer, limit, init.signal);
  };
  return tokenFetch as typeof fetch;
}

/** A Response made by a token fetch within `limit`, and a way to make another like it. */
export function bufferedCopy(
  response: Response,
  limit = Number.POSITIVE_INFINITY,
): (() => Response) | undefined {
  if (!(response instanceof BufferedResponse) || response.size > limit) return undefined;
  return () => response.copy();
}

async function send(
  url: URL,
  init: RequestInit,
  body: string | undefined,
  transport: Transport,
): Promise<IncomingMessage> {
  const headers: Record<string, string | number> = {};
  for (const [name, value] of new Headers(init.headers)) headers[name] = value;
  headers['user-agent'] ??= 'node';
  headers['accept-encoding'] ??= 'gzip, deflate, br';
  const sent = sendRequest(
    url,
    { method: init.method ?? 'GET', headers, body, signal: init.signal },
    transport,
  );
  // read() watches the signal itself while the body arrives.
  return sent.response.finally(sent.detach);
}

async function read(
  answer: IncomingMessage,
  limit: number,
  signal: AbortSignal | null | undefined,
): Promise<Response> {
  const status = answer.statusCode ?? 0;
  const statusText = answer.statusMessage ?? '';
  if (status === 204 || status === 205 || status === 304) {
    answer.resume();
    return new Response(null, { status, statusText, headers: headersOf(answer.rawHeaders, true) });
  }
  const declared = Number(answer.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) {
    answer.destroy();
    // Its content-length is what bounded-fetch refuses.
    return new Response(new Uint8Array(), {
      status,
      statusText,
      headers: headersOf(answer.rawHeaders, true),
    });
  }
  const onAbort = (): void => void answer.destroy(signal?.reason as Error);
  signal?.addEventListener('abort', onAbort, { once: true });
  const raw = await readBody(answer, limit).finally(() => signal?.removeEventListener('abort', onAbort));
  if (raw.error !== undefined)
    throw signal?.aborted === true ? signal.reason : new TypeError('fetch failed', { cause: raw.error });
  const bytes = decode(raw.bytes, answer.headers, limit);
  // The body is now the decoded bytes: the wire's length and encoding no longer apply.
  const clean = { status, statusText, headers: headersOf(answer.rawHeaders, false) };
  // Over the limit: a body one byte too long, which bounded-fetch refuses as it arrives.
  if (raw.over || bytes === undefined) return new Response(new Uint8Array(limit + 1), clean);
  return new BufferedResponse(bytes, clean);
}

/** The decoded body, or undefined past `limit` once decoded. */
function decode(bytes: Uint8Array, headers: IncomingHttpHeaders, limit: number): Uint8Array | undefined {
  const encoding = (headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  const options = { maxOutputLength: limit + 1 };
  let decoded: Uint8Array;
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') decoded = zlib.gunzipSync(bytes, options);
    else if (encoding === 'deflate') decoded = zlib.inflateSync(bytes, options);
    else if (encoding === 'br') decoded = zlib.brotliDecompressSync(bytes, options);
    else return bytes;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return undefined;
    throw new TypeError('fetch failed', { cause: error });
  }
  return decoded.byteLength > limit ? undefined : decoded;
}

/** The answer's headers; `wire` false leaves out the length and encoding of the wire. */
function headersOf(raw: readonly string[], wire: boolean): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (!wire && (lower === 'content-length' || lower === 'content-encoding')) continue;
    pairs.push([name, raw[i + 1] as string]);
  }
  return pairs;
}
