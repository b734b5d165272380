/**
 * The HTTP+SSE transport of MCP 2024-11-05: a GET stream that first names a POST endpoint
 * (`event: endpoint`), then carries every server message; requests are POSTed to that
 * endpoint and answered on the stream. A session lives exactly as long as its stream.
 */
import {
  idKey,
  isResponse,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type JsonRpcResponse,
  parseMessages,
} from './jsonrpc.js';
import type { WireBody } from './http-client.js';
import { MessageTooLargeError, readSse, SseGarbageError } from './sse.js';
import { type Deliver, errorText, type WireOptions } from './streamable-http.js';
import { HttpStatusError, retryAfterMs, StreamBrokenError } from './wire-errors.js';

/** What the session stream needs from its owner. */
export interface SseStreamHooks {
  /** Server messages that are not an answer being waited for. */
  deliver: Deliver;
  /** Deadline for opening the stream and learning its endpoint, ms. */
  timeoutMs: number;
  /** The stream ended without being closed here: the session is gone. */
  ended(error: unknown): void;
}

interface Waiter {
  resolve(response: JsonRpcResponse): void;
  reject(error: unknown): void;
}

export class LegacySseWire {
  readonly #options: WireOptions;
  #endpoint: URL | undefined;
  #abort: AbortController | undefined;
  readonly #waiters = new Map<string, Waiter>();
  /** The stream being opened or open; undefined once it ended or was closed. */
  #opening: Promise<void> | undefined;
  retryMs: number | undefined;

  constructor(options: WireOptions) {
    this.#options = options;
  }

  get url(): URL {
    return this.#options.url;
  }

  /** POST a request and wait for its answer on the stream, opening the stream if needed. */
  async exchange(
    request: JsonRpcRequest,
    signal: AbortSignal,
    hooks: SseStreamHooks,
  ): Promise<JsonRpcResponse> {
    await this.ensureOpen(hooks);
    const key = idKey(request.id);
    const answer = new Promise<JsonRpcResponse>((resolve, reject) => {
      this.#waiters.set(key, { resolve, reject });
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
    answer.catch(() => undefined);
    try {
      await this.post(request, signal);
      return await answer;
    } finally {
      this.#waiters.delete(key);
    }
  }

  /** The stream is the session: open it when there is none. */
  ensureOpen(hooks: SseStreamHooks): Promise<void> {
    this.#opening ??= this.#openSession(hooks).catch((error: unknown) => {
      this.#opening = undefined;
      throw error;
    });
    return this.#opening;
  }

  async #openSession(hooks: SseStreamHooks): Promise<void> {
    const deliver = (message: JsonRpcMessage): void => {
      const waiter = isResponse(message) ? this.#waiters.get(idKey(message.id)) : undefined;
      if (waiter !== undefined && isResponse(message)) waiter.resolve(message);
      else hooks.deliver(message);
    };
    const { closed } = await this.open(deliver, hooks.timeoutMs);
    const opened = this.#abort;
    void closed.catch((error: unknown) => {
      const closedHere = opened !== this.#abort;
      if (!closedHere) this.#opening = undefined;
      for (const waiter of this.#waiters.values()) waiter.reject(error);
      this.#waiters.clear();
      if (!closedHere) hooks.ended(error);
    });
  }

  /**
   * Open the stream and wait for the endpoint. Resolves with a promise that settles when the
   * stream ends (rejecting with StreamBrokenError when it broke).
   */
  async open(deliver: Deliver, timeoutMs: number): Promise<{ closed: Promise<void> }> {
    const body = await this.#connect(timeoutMs);
    let resolveEndpoint!: () => void;
    let rejectEndpoint!: (error: unknown) => void;
    const endpointKnown = new Promise<void>((resolve, reject) => {
      resolveEndpoint = resolve;
      rejectEndpoint = reject;
    });
    const timer = setTimeout(
      () =>
        rejectEndpoint(
          new StreamBrokenError('the SSE stream named no endpoint in time', undefined, undefined, true),
        ),
      timeoutMs,
    );
    const closed = this.#read(body, deliver, resolveEndpoint);
    closed.catch((error: unknown) => rejectEndpoint(error));
    try {
      await endpointKnown;
    } finally {
      clearTimeout(timer);
    }
    return { closed };
  }

  /** The GET that opens the stream, replacing any stream open before. */
  async #connect(timeoutMs: number): Promise<WireBody> {
    this.#abort?.abort();
    this.#endpoint = undefined;
    const abort = new AbortController();
    this.#abort = abort;
    const response = await this.#options
      .fetch(this.url, {
        method: 'GET',
        headers: { ...this.#options.headers, accept: 'text/event-stream' },
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(timeoutMs)]),
      })
      .catch((error: unknown) => {
        throw abort.signal.aborted ? new StreamBrokenError('closed', undefined, undefined, false) : error;
      });
    if (!response.ok || response.body === null) {
      const text = await errorText(response);
      throw new HttpStatusError(
        response.status,
        false,
        retryAfterMs(response.headers.get('retry-after')),
        text,
      );
    }
    return response.body;
  }

  /** Read the stream to its end, which is always a StreamBrokenError: the session is over. */
  #read(body: WireBody, deliver: Deliver, endpointKnown: () => void): Promise<void> {
    return readSse(body, {
      onEvent: (event) => {
        if (event.event === 'endpoint') {
          this.#endpoint = this.#sameOrigin(event.data);
          endpointKnown();
          return;
        }
        if (event.event !== undefined && event.event !== 'message') return;
        let messages: JsonRpcMessage[];
        try {
          messages = parseMessages(event.data);
        } catch (error) {
          throw new SseGarbageError('an SSE event did not hold a JSON-RPC message', { cause: error });
        }
        for (const message of messages) deliver(message);
      },
      onRetry: (ms) => {
        this.retryMs = ms;
      },
      ready: () => this.#options.ready?.(),
      maxEventBytes: this.#options.maxMessageBytes,
    }).then(
      () => {
        throw new StreamBrokenError('the server closed the SSE stream', undefined, this.retryMs, false);
      },
      (error: unknown) => {
        throw this.#broken(error);
      },
    );
  }

  #broken(error: unknown): StreamBrokenError {
    // One stream carries every answer: a message over the size limit cannot be tied to its
    // request, so the stream is dropped like one carrying garbage.
    const garbage = error instanceof SseGarbageError || error instanceof MessageTooLargeError;
    return new StreamBrokenError(
      error instanceof MessageTooLargeError
        ? `the SSE stream broke: ${error.message}`
        : garbage
          ? 'the SSE stream carried undecodable data'
          : 'the SSE stream broke',
      undefined,
      this.retryMs,
      garbage,
      { cause: error },
    );
  }

  /** POST one message; the answer arrives on the stream. */
  async post(message: JsonRpcMessage, signal: AbortSignal): Promise<void> {
    const endpoint = this.#endpoint;
    if (endpoint === undefined)
      throw new StreamBrokenError('no SSE session is open', undefined, undefined, false);
    const response = await this.#options.fetch(endpoint, {
      method: 'POST',
      headers: { ...this.#options.headers, 'content-type': 'application/json' },
      body: JSON.stringify(message),
      signal,
    });
    const text = await errorText(response);
    // The SDK's SSE server answers an unknown session with 404; older ones with 400.
    if (!response.ok) {
      throw new HttpStatusError(
        response.status,
        response.status === 404,
        retryAfterMs(response.headers.get('retry-after')),
        text,
      );
    }
  }

  close(): void {
    this.#abort?.abort();
    this.#abort = undefined;
    this.#endpoint = undefined;
    this.#opening = undefined;
  }

  /** The endpoint must stay on the server's origin: the bearer token goes with every POST. */
  #sameOrigin(data: string): URL {
    let endpoint: URL;
    try {
      endpoint = new URL(data.trim(), this.url);
    } catch {
      // The server's garbage, not a broken network (the TypeError was reported as a break).
      throw new SseGarbageError('the SSE endpoint is not a URL');
    }
    if (endpoint.origin !== this.url.origin) {
      throw new SseGarbageError(`the SSE endpoint ${endpoint.origin} is not on the server's origin`);
    }
    return endpoint;
  }
}
