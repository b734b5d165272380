/**
 * The two transports behind one connection, and the choice between them: `auto` tries
 * Streamable HTTP and falls back to the 2024-11-05 HTTP+SSE transport when the server
 * answers the first POST with 404 or 405.
 */
import type { Logger } from '../log.js';
import type { TransportStrategy } from './connection-options.js';
import type {
  JsonRpcId,
  JsonRpcMessage,
  JsonRpcNotification,
  JsonRpcRequest,
  JsonRpcResponse,
} from './jsonrpc.js';
import { LegacySseWire } from './legacy-sse.js';
import { type Deliver, StreamableHttpWire, type WireOptions } from './streamable-http.js';
import { HttpStatusError } from './wire-errors.js';

export interface WiresOptions {
  strategy: TransportStrategy;
  log: Logger;
  connectTimeoutMs: number;
  /** Resumptions of a broken response stream (Streamable HTTP). */
  resumeAttempts: number;
  /** Server messages that are not an answer being waited for. */
  deliver: Deliver;
  /** The HTTP+SSE stream, which is the session, ended on its own. */
  sseEnded(error: unknown): void;
}

export class Wires {
  mode: 'http' | 'sse' | undefined;
  readonly http: StreamableHttpWire;
  readonly sse: LegacySseWire;
  readonly #o: WiresOptions;

  constructor(wire: WireOptions, options: WiresOptions) {
    this.#o = options;
    this.http = new StreamableHttpWire(wire);
    this.sse = new LegacySseWire(wire);
    if (options.strategy === 'sse') this.mode = 'sse';
    if (options.strategy === 'streamable-http') this.mode = 'http';
  }

  get transport(): 'streamable-http' | 'sse' | undefined {
    return this.mode === undefined ? undefined : this.mode === 'http' ? 'streamable-http' : 'sse';
  }

  /** Send a request and wait for its answer; other messages on the way are delivered. */
  async exchange(request: JsonRpcRequest, signal: AbortSignal): Promise<JsonRpcResponse> {
    if (this.mode === 'sse') return this.#exchangeSse(request, signal);
    try {
      const response = await this.http.exchange(request, this.#o.deliver, signal, {
        resumeAttempts: this.#o.resumeAttempts,
      });
      this.mode = 'http';
      return response;
    } catch (error) {
      const fallBack =
        this.mode === undefined &&
        this.#o.strategy !== 'streamable-http' &&
        error instanceof HttpStatusError &&
        (error.status === 404 || error.status === 405) &&
        !error.sessionExpired;
      if (!fallBack) throw error;
      this.#o.log.info('the server does not speak Streamable HTTP; using the HTTP+SSE transport', {
        status: error.status,
      });
      this.mode = 'sse';
      return this.#exchangeSse(request, signal);
    }
  }

  /** A notification or a response to the server, within the connect deadline. */
  async post(message: JsonRpcMessage): Promise<void> {
    const signal = this.connectSignal();
    if (this.mode === 'sse') {
      await this.sse.ensureOpen(this.#sseHooks());
      await this.sse.post(message, signal);
      return;
    }
    await this.http.post(message, this.#o.deliver, signal);
  }

  /** Tell the server a request was given up on (2025-era: a notification). Best effort. */
  cancel(requestId: JsonRpcId): void {
    const cancel: JsonRpcNotification = {
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId, reason: 'timed out in latchkey' },
    };
    void this.post(cancel).catch(() => undefined);
  }

  connectSignal(): AbortSignal {
    return AbortSignal.timeout(this.#o.connectTimeoutMs);
  }

  /** Forget the session: end it at the server unless it is already gone there. */
  dropSession(endAtServer: boolean): void {
    if (endAtServer && this.http.sessionId !== undefined) void this.http.terminate();
    this.http.sessionId = undefined;
    if (this.mode === 'sse') this.sse.close();
  }

  async close(): Promise<void> {
    if (this.mode === 'http') await this.http.terminate();
    this.sse.close();
  }

  #exchangeSse(request: JsonRpcRequest, signal: AbortSignal): Promise<JsonRpcResponse> {
    return this.sse.exchange(request, signal, this.#sseHooks());
  }

  #sseHooks(): { deliver: Deliver; timeoutMs: number; ended(error: unknown): void } {
    return { deliver: this.#o.deliver, timeoutMs: this.#o.connectTimeoutMs, ended: this.#o.sseEnded };
  }
}
