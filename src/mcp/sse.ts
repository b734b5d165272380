/**
 * Server-Sent Events framing for MCP response and listen streams, on eventsource-parser (the
 * parser the MCP SDK uses). The reader owns the body: it cancels it when the consumer throws
 * (undecodable data) so a poisoned stream is never read further.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';

export type SseEvent = EventSourceMessage;

export interface SseHandlers {
  onEvent(event: SseEvent): void;
  /** The server's `retry:` field, in milliseconds. */
  onRetry?(ms: number): void;
}

/** Bytes of one event the parser may buffer; a server sending more is not speaking SSE. */
const MAX_EVENT_BYTES = 16 * 1024 * 1024;

export class SseGarbageError extends Error {
  override readonly name = 'SseGarbageError';
}

/**
 * Read `body` to its end, calling `onEvent` per event. Resolves when the server ends the
 * stream; rejects when the network fails, the framing is broken, or a handler throws.
 */
export async function readSse(body: ReadableStream<Uint8Array>, handlers: SseHandlers): Promise<void> {
  let failure: unknown;
  const parser = createParser({
    maxBufferSize: MAX_EVENT_BYTES,
    onEvent: (event) => {
      if (failure === undefined) handlers.onEvent(event);
    },
    onRetry: (ms) => handlers.onRetry?.(ms),
    onError: (error) => {
      // Unknown fields and odd retry values are allowed by the SSE spec; an event too large
      // to buffer is not.
      if (error.type === 'max-buffer-size-exceeded') failure ??= new SseGarbageError(error.message);
    },
  });
  // A TextDecoder in streaming mode rather than a TextDecoderStream: two fewer web streams
  // per response, which the proxy pays on every request.
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
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
