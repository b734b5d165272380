/**
 * The Streamable HTTP transport (MCP 2025-03-26 and later), client side, one HTTP exchange at
 * a time. latchkey speaks it directly rather than through the SDK's client transport because
 * the connection must know *which* request a broken stream carried: that decides between
 * resuming (Last-Event-ID), resending (the server never saw it) and telling the host (the
 * server may have run it). The SDK transport reports stream trouble through one `onerror`
 * without that link.
 */
import { decodeText, readBody } from '../body.js';
import { sleep } from '../lifecycle/lease.js';
import type { Logger } from '../log.js';
import { readAtMost } from '../oauth/bounded-fetch.js';
import { cancelBody, releaseBody, type WireBody, type WireFetch, type WireResponse } from './http-client.js';
import {
  type JsonRpcError,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type JsonRpcResponse,
  idKey,
  isResponse,
  parseMessages,
} from './jsonrpc.js';
import { retryDelayMs } from './recovery.js';
import { DEFAULT_MAX_MESSAGE_BYTES, MessageTooLargeError, readSse, SseGarbageError, STOP } from './sse.js';
import { HttpStatusError, retryAfterMs, StreamBrokenError } from './wire-errors.js';

export interface WireOptions {
  url: URL;
  /** Sends the requests; latchkey's auth layer adds the bearer token (auth-fetch.ts). */
  fetch: WireFetch;
  /** Extra headers on every request (`--header`). */
  headers?: Readonly<Record<string, string>>;
  /** Bytes one message from the server may have. Default DEFAULT_MAX_MESSAGE_BYTES (32 MiB). */
  maxMessageBytes?: number;
  /**
   * Backpressure: a promise to wait for before reading more from the server, or undefined
   * when whoever takes the messages keeps up. Default: always ready.
   */
  ready?: () => Promise<void> | undefined;
  logger?: Logger;
}

export interface ExchangeOptions {
  /** Resumptions (Last-Event-ID) of a broken response stream before it counts as lost. Default 3. */
  resumeAttempts?: number;
  /** The request-metadata headers of a 2026-07-28 request: no session, and no resumption. */
  modern?: Readonly<Record<string, string>>;
}

export type Deliver = (message: JsonRpcMessage) => void;

/** How a response stream ended. */
export interface StreamProgress {
  /** The last SSE event id seen, kept for Last-Event-ID across attempts. */
  lastEventId?: string;
  retryMs?: number;
}

/** Bytes of an error body read for its text and JSON-RPC error; the rest is not read. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export class StreamableHttpWire {
  sessionId: string | undefined;
  protocolVersion: string | undefined;
  readonly #options: WireOptions;

  constructor(options: WireOptions) {
    this.#options = options;
  }

  get url(): URL {
    return this.#options.url;
  }

  /**
   * POST `messages` and deliver what comes back. Resolves once every response to a request in
   * `messages` has been delivered (or at once on 202). Throws HttpStatusError when the server
   * refused the POST (it did not process it) and StreamBrokenError when the answer broke off.
   * `modern` holds the request-metadata headers of a 2026-07-28 request, which belongs to no
   * session.
   */
  async post(
    messages: JsonRpcMessage | readonly JsonRpcMessage[],
    deliver: Deliver,
    signal: AbortSignal,
    progress: StreamProgress = {},
    modern?: Readonly<Record<string, string>>,
  ): Promise<void> {
    const list = Array.isArray(messages) ? messages : [messages];
    const expected = new Set(
      list.filter((m) => 'method' in m && 'id' in m).map((m) => idKey((m as { id: string | number }).id)),
    );
    const sentSession = this.sessionId !== undefined && modern === undefined;
    const base = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' };
    const response = await this.#options.fetch(this.url, {
      method: 'POST',
      headers: modern === undefined ? this.#headers(base) : { ...this.#options.headers, ...base, ...modern },
      body: JSON.stringify(messages),
      signal,
    });
    const session = response.headers.get('mcp-session-id');
    if (session !== null && session !== '' && modern === undefined) this.sessionId = session;
    if (!response.ok) throw await statusError(response, sentSession);
    if (response.status === 202 || expected.size === 0) {
      await releaseBody(response.body);
      return;
    }
    await this.#consume(response, expected, deliver, progress);
  }

  /**
   * Send one request and wait for its answer; every other message on the way goes to
   * `deliver`. A broken stream that had event ids is resumed; one that cannot be throws
   * StreamBrokenError, since the server may have run the request.
   */
  async exchange(
    request: JsonRpcRequest,
    deliver: Deliver,
    signal: AbortSignal,
    options: ExchangeOptions = {},
  ): Promise<JsonRpcResponse> {
    const key = idKey(request.id);
    let answer: JsonRpcResponse | undefined;
    const take = (message: JsonRpcMessage): void => {
      if (isResponse(message) && idKey(message.id) === key) answer = message;
      else deliver(message);
    };
    const progress: StreamProgress = {};
    try {
      await this.post(request, take, signal, progress, options.modern);
    } catch (error) {
      const resumable =
        options.modern === undefined &&
        error instanceof StreamBrokenError &&
        !error.garbage &&
        progress.lastEventId !== undefined;
      if (!resumable) throw error;
      await this.#resume(key, take, signal, progress, error, options.resumeAttempts ?? 3);
    }
    if (answer === undefined)
      throw new StreamBrokenError('no answer arrived', progress.lastEventId, progress.retryMs, false);
    return answer;
  }

  /** Resume a broken response stream with Last-Event-ID, a few times with backoff. */
  async #resume(
    key: string,
    deliver: Deliver,
    signal: AbortSignal,
    progress: StreamProgress,
    first: StreamBrokenError,
    attempts: number,
  ): Promise<void> {
    let last: unknown = first;
    for (let attempt = 0; attempt < attempts; attempt++) {
      await sleep(retryDelayMs(attempt, progress.retryMs), signal);
      const lastEventId = progress.lastEventId;
      if (lastEventId === undefined) break;
      try {
        this.#options.logger?.debug('resuming a broken response stream', { attempt: attempt + 1 });
        await this.resume(new Set([key]), deliver, signal, { ...progress, lastEventId });
        return;
      } catch (error) {
        last = error;
        if (!(error instanceof StreamBrokenError) || error.garbage) break;
      }
    }
    // The stream cannot be resumed: the request's fate is unknown.
    throw last instanceof StreamBrokenError
      ? last
      : new StreamBrokenError('the response stream could not be resumed', undefined, undefined, false, {
          cause: last,
        });
  }

  /**
   * Resume a broken response stream with Last-Event-ID (a GET, per the transport spec). The
   * server replays what was lost, then the rest of the answer.
   */
  async resume(
    expected: Set<string>,
    deliver: Deliver,
    signal: AbortSignal,
    progress: StreamProgress & { lastEventId: string },
  ): Promise<void> {
    const response = await this.#options.fetch(this.url, {
      method: 'GET',
      headers: this.#headers({ accept: 'text/event-stream', 'last-event-id': progress.lastEventId }),
      signal,
    });
    if (!response.ok) throw await statusError(response, this.sessionId !== undefined);
    await this.#consume(response, expected, deliver, progress);
  }

  /**
   * The optional GET stream for server-initiated messages. Resolves 'unsupported' on 405,
   * 'ended' when the server closes it; throws like post().
   */
  async listen(
    deliver: Deliver,
    signal: AbortSignal,
    progress: StreamProgress,
  ): Promise<'unsupported' | 'ended'> {
    const response = await this.#options.fetch(this.url, {
      method: 'GET',
      headers: this.#headers({
        accept: 'text/event-stream',
        ...(progress.lastEventId === undefined ? {} : { 'last-event-id': progress.lastEventId }),
      }),
      signal,
    });
    if (response.status === 405) {
      await releaseBody(response.body);
      return 'unsupported';
    }
    if (!response.ok) throw await statusError(response, this.sessionId !== undefined);
    await this.#consume(response, new Set(), deliver, progress);
    return 'ended';
  }

  /** Tell the server the session is over (DELETE). Best effort and quick. */
  async terminate(timeoutMs = 2000): Promise<void> {
    const sessionId = this.sessionId;
    this.sessionId = undefined;
    if (sessionId === undefined) return;
    try {
      const response = await this.#options.fetch(this.url, {
        method: 'DELETE',
        headers: this.#headers({}, sessionId),
        signal: AbortSignal.timeout(timeoutMs),
      });
      await releaseBody(response.body);
    } catch {
      // The session dies with the server's timeout anyway.
    }
  }

  #headers(base: Record<string, string>, sessionId = this.sessionId): Record<string, string> {
    return {
      ...this.#options.headers,
      ...base,
      ...(sessionId === undefined ? {} : { 'mcp-session-id': sessionId }),
      ...(this.protocolVersion === undefined ? {} : { 'mcp-protocol-version': this.protocolVersion }),
    };
  }

  async #consume(
    response: WireResponse,
    expected: Set<string>,
    deliver: Deliver,
    progress: StreamProgress,
  ): Promise<void> {
    const type = (response.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    if (type === 'application/json') {
      await this.#consumeJson(response, expected, deliver);
      return;
    }
    if (type !== 'text/event-stream' || response.body === null) {
      if (response.body !== null) await cancelBody(response.body);
      throw new StreamBrokenError(
        `unexpected content type ${JSON.stringify(type)}`,
        undefined,
        undefined,
        true,
      );
    }
    await this.#consumeSse(response.body, expected, deliver, progress);
    if (expected.size > 0) {
      throw new StreamBrokenError(
        'the response stream ended before the answer',
        progress.lastEventId,
        progress.retryMs,
        false,
      );
    }
  }

  /** Read SSE events until every expected answer came (or the stream ends or breaks). */
  async #consumeSse(
    body: WireBody,
    expected: Set<string>,
    deliver: Deliver,
    progress: StreamProgress,
  ): Promise<void> {
    const watching = expected.size > 0;
    try {
      await readSse(body, {
        onEvent: (event) => {
          if (event.id !== undefined && event.id !== '') progress.lastEventId = event.id;
          // Priming events carry an id and no data; other event types are not MCP messages.
          if (event.data === '' || (event.event !== undefined && event.event !== 'message')) return;
          let messages: JsonRpcMessage[];
          try {
            messages = parseMessages(event.data);
          } catch (error) {
            throw new SseGarbageError('an SSE event did not hold a JSON-RPC message', { cause: error });
          }
          for (const message of messages) {
            if (isResponse(message)) expected.delete(idKey(message.id));
            deliver(message);
          }
          return watching && expected.size === 0 ? STOP : undefined;
        },
        onRetry: (ms) => {
          progress.retryMs = ms;
        },
        ready: () => this.#options.ready?.(),
        maxEventBytes: this.#limit,
      });
    } catch (error) {
      if (error instanceof MessageTooLargeError) throw error;
      const garbage = error instanceof SseGarbageError;
      throw new StreamBrokenError(
        garbage
          ? 'the response stream carried undecodable data'
          : `the response stream broke (${describe(error)})`,
        progress.lastEventId,
        progress.retryMs,
        garbage,
        { cause: error },
      );
    }
  }

  get #limit(): number {
    return this.#options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }

  async #consumeJson(response: WireResponse, expected: Set<string>, deliver: Deliver): Promise<void> {
    let messages: JsonRpcMessage[];
    try {
      const bytes = response.body === null ? new Uint8Array() : await readAtMost(response.body, this.#limit);
      if (bytes === undefined) throw new MessageTooLargeError(this.#limit);
      messages = parseMessages(new TextDecoder().decode(bytes));
    } catch (error) {
      if (error instanceof MessageTooLargeError) throw error;
      throw new StreamBrokenError('the JSON response was undecodable', undefined, undefined, true, {
        cause: error,
      });
    }
    for (const message of messages) {
      if (isResponse(message)) expected.delete(idKey(message.id));
      deliver(message);
    }
    if (expected.size > 0) {
      throw new StreamBrokenError('the JSON response lacked an answer', undefined, undefined, false);
    }
  }
}

async function statusError(response: WireResponse, sentSession: boolean): Promise<HttpStatusError> {
  const text = await errorText(response);
  return new HttpStatusError(
    response.status,
    response.status === 404 && sentSession,
    retryAfterMs(response.headers.get('retry-after')),
    // Whole: cutting before the secrets are scrubbed could leave half a token behind.
    text,
    rpcErrorIn(text),
  );
}

/** The start of an error body, at most MAX_ERROR_BODY_BYTES of it; '' when it cannot be read. */
export async function errorText(response: WireResponse): Promise<string> {
  const read = await readBody(response.body, MAX_ERROR_BODY_BYTES);
  return read.error === undefined ? decodeText(read.bytes) : '';
}

/** The JSON-RPC error an error body holds, if it holds one. */
function rpcErrorIn(text: string): JsonRpcError | undefined {
  try {
    const error = (JSON.parse(text) as { error?: unknown } | null)?.error as
      Partial<JsonRpcError> | undefined;
    if (typeof error?.code !== 'number' || typeof error.message !== 'string') return undefined;
    return { code: error.code, message: error.message, ...('data' in error ? { data: error.data } : {}) };
  } catch {
    return undefined;
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}
