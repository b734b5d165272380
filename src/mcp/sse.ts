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
  onEvent(event: SseEvent): void;
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

/**
 * Read `body` to its end, calling `onEvent` per event. Resolves when the server ends the
 * stream; rejects when the network fails, the framing is broken, or a handler throws.
 */
export async function readSse(body: ReadableStream<Uint8Array>, handlers: SseHandlers): Promise<void> {
  let failure: unknown;
  const limit = handlers.maxEventBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const parser = createParser({
    maxBufferSize: limit,
    onEvent: (event) => {
      if (failure === undefined) handlers.onEvent(event);
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
  const reader = body.getReader();
  try {
    for (;;) {
      const paused = handlers.ready?.();
      if (paused !== undefined) await paused;
      const { done, value } = await reader.read();
      if (done) {
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
    }
  } catch (error) {
    await reader.cancel().catch(() => undefined);
    throw error;
  } finally {
    reader.releaseLock();
  }
}
