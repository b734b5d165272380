/**
 * Size limits on everything latchkey reads from an authorization server.
 *
 * oauth4webapi reads the Response it is handed with `response.json()`, which buffers the
 * whole body first: a hostile AS could make a login or a refresh hold gigabytes. So every
 * request oauth4webapi makes goes through `boundedFetch`, which reads the body as a stream
 * and stops at the limit (a Content-Length above it is refused before a byte is read). The
 * Response oauth4webapi then sees holds at most `limit` bytes. Past the limit the request
 * fails with a RESPONSE_TOO_LARGE LatchkeyError naming the server and what was too large;
 * nothing from such an answer is processed, so nothing from it is stored.
 *
 * Tokens have their own limit (`checkTokenLengths`): a token endpoint answer under the body
 * limit may still carry a token no resource server would accept in a header.
 */
import { type BodySource, readBody } from '../body.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import { type NextAction, operator } from '../next-action.js';
import { bufferedCopy } from './token-http.js';

/** Limits in bytes. Documented in docs/security.md; change them there too. */
export const ResponseLimits = {
  /** Protected-resource and authorization server metadata documents. */
  metadata: 256 * 1024,
  /** Dynamic client registration answers (RFC 7591). */
  registration: 256 * 1024,
  /** Token, device authorization and revocation endpoint answers, errors included. */
  endpoint: 128 * 1024,
  /** One access, refresh or ID token. */
  token: 32 * 1024,
} as const;

export interface BoundedFetchOptions {
  /** Most bytes of body accepted. */
  limit: number;
  /** What the body is, for the error: "token endpoint response". */
  what: string;
  /** The MCP server the request is made for, when known. */
  server?: string | undefined;
}

/** `base` (default: the global fetch, looked up per call) with every body capped. */
export function boundedFetch(base: typeof fetch | undefined, options: BoundedFetchOptions): typeof fetch {
  return async (input, init) => {
    const response = await (base ?? globalThis.fetch)(input, init);
    return boundedResponse(response, requestUrl(input), options);
  };
}

/** A Response holding at most `options.limit` bytes of `response`'s body, or a thrown error. */
export async function boundedResponse(
  response: Response,
  url: string,
  options: BoundedFetchOptions,
): Promise<Response> {
  // Read whole and within the limit already (token-http.ts): nothing to read again.
  if (bufferedCopy(response, options.limit) !== undefined) return response;
  const body = response.body;
  if (body === null) return response;
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > options.limit) {
    await body.cancel().catch(() => undefined);
    throw tooLarge(url, options, `declares ${declared} bytes`);
  }
  const bytes = await readAtMost(body, options.limit);
  if (bytes === undefined) throw tooLarge(url, options, 'did not end');
  const headers = new Headers(response.headers);
  // The body is now the decoded bytes: the length and encoding of the wire no longer apply.
  headers.delete('content-length');
  headers.delete('content-encoding');
  return new Response(bytes, { status: response.status, statusText: response.statusText, headers });
}

/**
 * `base` with every response body counted as it streams: past `options.limit` bytes in one
 * response (in one event of an event stream, which may rightly run for days) the body fails
 * with RESPONSE_TOO_LARGE. For readers that take a Response and read it themselves (the MCP
 * SDK's client transports, for `latchkey tools` and `call`), where pre-reading would break
 * streaming.
 */
export function streamCappedFetch(base: typeof fetch, options: BoundedFetchOptions): typeof fetch {
  return async (input, init) => {
    const response = await base(input, init);
    if (response.body === null) return response;
    const url = requestUrl(input);
    const events = (response.headers.get('content-type') ?? '').toLowerCase().startsWith('text/event-stream');
    let size = 0;
    let previous = 0;
    const counter = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        // The largest stretch without an event boundary, the part from earlier chunks included.
        let largest = 0;
        let from = 0;
        for (const end of events ? eventEnds(chunk, previous) : []) {
          largest = Math.max(largest, size + end - from);
          size = 0;
          from = end;
        }
        size += chunk.byteLength - from;
        previous = chunk.at(-1) ?? previous;
        if (Math.max(largest, size) > options.limit) controller.error(tooLarge(url, options, 'went on'));
        else controller.enqueue(chunk);
      },
    });
    const headers = new Headers(response.headers);
    headers.delete('content-length');
    headers.delete('content-encoding');
    return new Response(response.body.pipeThrough(counter), {
      status: response.status,
      statusText: response.statusText,
      headers,
    });
  };
}

/**
 * Where SSE events in `chunk` end (the index after each blank line), in order. `previous` is
 * the last byte of the chunk before, for a blank line split between two chunks.
 */
function eventEnds(chunk: Uint8Array, previous: number): number[] {
  const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const ends: number[] = [];
  if ((previous === 10 && bytes[0] === 10) || (previous === 13 && bytes[0] === 13)) ends.push(1);
  for (const blank of ['\n\n', '\r\r', '\r\n\r\n']) {
    for (let at = bytes.indexOf(blank); at >= 0; at = bytes.indexOf(blank, at + blank.length)) {
      ends.push(at + blank.length);
    }
  }
  return ends.sort((a, b) => a - b);
}

/** The body, or undefined when it goes on past `limit` bytes (the rest is not read). */
export async function readAtMost(body: BodySource, limit: number): Promise<Uint8Array | undefined> {
  const read = await readBody(body, limit);
  if (read.error !== undefined) throw read.error;
  return read.over ? undefined : read.bytes;
}

/**
 * Refuse a token endpoint answer whose tokens are longer than `ResponseLimits.token`. Called
 * before any of them is registered, stored or used.
 */
export function checkTokenLengths(
  response: { access_token?: unknown; refresh_token?: unknown; id_token?: unknown },
  server: string | undefined,
  issuer: string,
): void {
  for (const name of ['access_token', 'refresh_token', 'id_token'] as const) {
    const token = response[name];
    if (typeof token !== 'string') continue;
    const length = Buffer.byteLength(token);
    if (length <= ResponseLimits.token) continue;
    throw tooLargeError(
      `the ${name} from ${issuer} is ${length} bytes, over the ${ResponseLimits.token}-byte limit; the answer was refused and nothing from it was kept.`,
      server,
      operator(`report the oversized token to the operator of ${issuer}`),
    );
  }
}

/** The message of each size error without its server prefix, to name the server later. */
const bareMessages = new WeakMap<LatchkeyError, string>();

function tooLargeError(
  message: string,
  server: string | undefined,
  next: NextAction | undefined,
): LatchkeyError {
  const error = new LatchkeyError(ErrorCode.RESPONSE_TOO_LARGE, message, {
    server,
    retryable: false,
    next,
  });
  bareMessages.set(error, message);
  return error;
}

function tooLarge(url: string, options: BoundedFetchOptions, how: string): LatchkeyError {
  const host = hostOf(url);
  return tooLargeError(
    `the ${options.what} from ${host} ${how} past the ${options.limit}-byte limit; it was refused and nothing from it was kept.`,
    options.server,
    operator(`check that ${host} is the server you meant, and report the oversized answer to its operator`),
  );
}

/**
 * `error` when it is a size-limit error, naming `server` if it did not yet; else undefined.
 * Callers that translate oauth4webapi's errors let these through unchanged: they are not
 * network failures, and no retry will make the answer smaller.
 */
export function oversizeError(error: unknown, server: string | undefined): LatchkeyError | undefined {
  if (!isLatchkeyError(error) || error.code !== ErrorCode.RESPONSE_TOO_LARGE) return undefined;
  const bare = bareMessages.get(error);
  if (error.server !== undefined || server === undefined || bare === undefined) return error;
  return tooLargeError(bare, server, error.next);
}

function requestUrl(input: Parameters<typeof fetch>[0]): string {
  if (typeof input === 'string') return input;
  if (input instanceof URL) return input.href;
  return input.url;
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'the server';
  }
}
