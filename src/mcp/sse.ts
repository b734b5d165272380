/**
 * Server-Sent Events framing for MCP response and listen streams, on eventsource-parser (the
 * parser the MCP SDK uses). The reader owns the body: it cancels it when the consumer throws
 * (undecodable data) so a poisoned stream is never read further.
 *
 * Memory is bounded two ways. One event may hold at most `maxEventBytes` (the proxy's
 * message size limit); past it the stream fails with MessageTooLargeError. And before each
 * read the reader waits for `ready()`: while whoever takes the messages is not keeping up
 * (the host is not reading the proxy's stdout), nothing more is read, so the socket's
 * receive window fills and TCP stops the server instead of latchkey's heap growing.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';

import { ErrorCode, LatchkeyError } from '../errors.js';

export type SseEvent = EventSourceMessage;

export interface SseHandlers {
  /** Returns STOP when nothing more is needed from the stream; any other value reads on. */
  onEvent(event: SseEvent): unknown;
  /** The server's `retry:` field, in milliseconds. */
  onRetry?(ms: number): void;
  /** A promise to wait for before reading on (backpressure), or undefined to read at once. */
  ready?(): Promise<void> | undefined;
  /** Characters of one event the parser may buffer. Default DEFAULT_MAX_MESSAGE_BYTES. */
  maxEventBytes?: number | undefined;
}

/** The default limit on one MCP message: big tool results are legitimate, gigabytes are not. */
export const DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024;

/**
 * The stream carried something that is not SSE-framed JSON-RPC. A LatchkeyError like every
 * failure of a parser of network input; the wires turn it into a broken stream to recover from.
 */
export class SseGarbageError extends LatchkeyError {
  override readonly name = 'SseGarbageError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(ErrorCode.MCP_FAILED, message, {
      retryable: true,
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
  }
}

/** One message (an SSE event or a JSON body) was larger than the configured limit. */
export class MessageTooLargeError extends LatchkeyError {
  override readonly name = 'MessageTooLargeError';
  constructor(readonly limit: number) {
    super(
      ErrorCode.RESPONSE_TOO_LARGE,
      `a message from the server exceeded the ${limit}-byte message size limit`,
      { retryable: false },
    );
  }
}

/** What readSse reads: a fetch body, or a node:http one (http-client.ts). */
export interface SseBody extends AsyncIterable<Uint8Array> {
  /** Drop the rest without closing the connection; when absent, the stream is cancelled. */
  release?(): void;
}

/** Returned by `onEvent` when the reader has all it waits for: reading stops there. */
export const STOP = 'stop';

/**
 * Read `body` to its end, calling `onEvent` per event. Resolves when the server ends the
 * stream or `onEvent` returns STOP (then the rest is released, or the stream cancelled);
 * rejects when the network fails, the framing is broken, or a handler throws.
 */
export async function readSse(body: SseBody, handlers: SseHandlers): Promise<void> {
  let failure: unknown;
  let stopped = false;
  const limit = handlers.maxEventBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const parser = createParser({
    maxBufferSize: limit,
    onEvent: (event) => {
      if (failure !== undefined || stopped) return;
      if (handlers.onEvent(event) === STOP) stopped = true;
    },
    onRetry: (ms) => handlers.onRetry?.(ms),
    onError: (error) => {
      // Unknown fields and odd retry values are allowed by the SSE spec; an event too large
      // to buffer is not.
      if (error.type === 'max-buffer-size-exceeded') failure ??= new MessageTooLargeError(limit);
    },
  });
  // A TextDecoder in streaming mode rather than a TextDecoderStream: two fewer web streams
  // per response, which the proxy pays on every request.
  const decoder = new TextDecoder();
  const chunks = body[Symbol.asyncIterator]();
  try {
    for (;;) {
      const paused = handlers.ready?.();
      if (paused !== undefined) await paused;
      const { done, value } = await chunks.next();
      if (done === true) {
        parser.feed(decoder.decode());
        if (failure !== undefined) throw failure;
        return;
      }
      try {
        parser.feed(decoder.decode(value, { stream: true }));
      } catch (error) {
        failure ??= error;
      }
      if (failure !== undefined) throw failure;
      if (stopped) {
        if (body.release === undefined) await chunks.return?.();
        else body.release();
        return;
      }
    }
  } catch (error) {
    // Cancels the stream: a poisoned or broken stream is never read further.
    await chunks.return?.().catch(() => undefined);
    throw error;
  }
}
