/**
 * The HTTP the MCP wires speak: a small request/answer shape that a fetch Response satisfies
 * as it is, and a client on node:http with a keep-alive agent (the `httpClient: 'node'` option).
 *
 * Why not the global fetch: every MCP request of the proxy went through undici's fetch, and a
 * CPU profile of 2 000 tools/call round trips put most of the proxy's own time there (request
 * and header objects, web streams for each body, an AbortSignal.any per request, a
 * DOMException per cancelled body). node:http does the same exchange with a fraction of that
 * work, and loading undici on the first request was ~40 ms of every proxy start. A caller
 * that passes its own `fetch` (ConnectionOptions.fetch) keeps it: the wires take either.
 *
 * What fetch did that is kept: a network failure rejects with a TypeError whose `cause`
 * holds the system error (recovery.ts tells "maybe sent" from "refused" by it); an abort
 * rejects with the signal's reason; redirects are never followed here (redirect-policy.ts
 * decides). What is added: an answer read to its end, or released once the wire has what it
 * needs (release()), leaves its connection for the next request instead of closing it.
 */
import type { IncomingMessage } from 'node:http';

import { pollFirst, sendRequest, type Transport, transports } from '../node-http.js';

/** A response body: its chunks in order, once. */
export interface WireBody extends AsyncIterable<Uint8Array> {
  /** Stop now and close the stream (a fetch body's cancel()). */
  cancel(): Promise<void> | void;
  /**
   * The reader needs nothing more: the rest is read and dropped, so that the connection can
   * carry the next request. Absent on a fetch body; cancel() stands in.
   */
  release?(): void;
}

export interface WireResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  readonly body: WireBody | null;
}

export interface WireInit {
  method: string;
  headers: Readonly<Record<string, string>>;
  body?: string;
  signal?: AbortSignal;
  /** For a fetch underneath: redirects are redirect-policy.ts's to follow. */
  redirect?: 'manual';
}

/** What the wires send with; `typeof fetch` is one. */
export type WireFetch = (url: URL, init: WireInit) => Promise<WireResponse>;

/** Done with an answer: its connection may carry the next request. */
export async function releaseBody(body: WireBody | null): Promise<void> {
  if (body === null) return;
  if (body.release !== undefined) body.release();
  else await cancelBody(body);
}

export async function cancelBody(body: WireBody): Promise<void> {
  try {
    await body.cancel();
  } catch {
    // A body that cannot be cancelled is gone already.
  }
}

/** Let a released answer's rest drain for this long before its connection is closed instead. */
const DRAIN_MS = 1000;

/**
 * A WireFetch on node:http(s), one keep-alive agent per client: the proxy's one server is
 * reached over the same connection request after request. Requests carry no timeout of
 * their own: the caller's signal (a request's deadline, pending.ts) ends them.
 */
export function createHttpClient(): WireFetch {
  const transportFor = transports();
  return async (url, init) => {
    init.signal?.throwIfAborted();
    const transport = await transportFor(url.protocol);
    await pollFirst();
    init.signal?.throwIfAborted();
    return send(url, init, transport);
  };
}

async function send(url: URL, init: WireInit, transport: Transport): Promise<WireResponse> {
  const headers: Record<string, string | number> = { ...init.headers };
  // What Node's fetch sent: some front ends refuse a request without a User-Agent.
  if (!Object.keys(headers).some((name) => name.toLowerCase() === 'user-agent'))
    headers['user-agent'] = 'node';
  // A GET here opens an event stream with no natural end: it ends when the server goes away
  // or drops the session, and then its connection is the one most likely being closed. Back
  // in the pool it was picked for the host's next request a moment before the server's close
  // was read, failing a tools/call as "may have run" that no server saw. Held for the stream's
  // life anyway, it is closed with the stream instead.
  const reuse = init.method !== 'GET';
  const sent = sendRequest(
    url,
    { method: init.method, headers, body: init.body, signal: init.signal, reuse },
    transport,
  );
  // The signal stays attached until the body is done: it also ends a stream being read.
  return wireResponse(await sent.response, sent.detach);
}

function wireResponse(response: IncomingMessage, detach: () => void): WireResponse {
  const status = response.statusCode ?? 0;
  const raw = response.headers;
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: {
      get(name: string): string | null {
        const value = raw[name.toLowerCase()];
        if (value === undefined) return null;
        return Array.isArray(value) ? value.join(', ') : value;
      },
    },
    body: new NodeBody(response, detach),
  };
}

/**
 * The body as chunks pulled one at a time: the socket is paused while the reader holds a
 * chunk, so a reader that waits (backpressure) stops the server through TCP.
 */
class NodeBody implements WireBody {
  readonly #response: IncomingMessage;
  readonly #detach: () => void;
  readonly #chunks: Buffer[] = [];
  #ended = false;
  #draining = false;
  #failure: unknown;
  #wake: (() => void) | undefined;

  constructor(response: IncomingMessage, detach: () => void) {
    this.#response = response;
    this.#detach = detach;
    response.on('data', (chunk: Buffer) => {
      if (this.#draining) return;
      this.#chunks.push(chunk);
      response.pause();
      this.#notify();
    });
    response.once('end', () => {
      this.#ended = true;
      this.#finish();
    });
    response.on('error', (error) => {
      this.#failure ??= error;
      this.#notify();
    });
    response.once('close', () => {
      if (!this.#ended) this.#failure ??= new TypeError('terminated: the response was cut off');
      this.#finish();
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: () => this.#next(),
      return: () => {
        this.cancel();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  cancel(): void {
    this.#detach();
    if (!this.#ended) this.#response.destroy();
  }

  release(): void {
    this.#detach();
    if (this.#ended || this.#draining) return;
    this.#draining = true;
    this.#chunks.length = 0;
    const timer = setTimeout(() => this.#response.destroy(), DRAIN_MS);
    timer.unref();
    this.#response.once('close', () => clearTimeout(timer));
    this.#response.resume();
  }

  async #next(): Promise<IteratorResult<Uint8Array>> {
    for (;;) {
      const chunk = this.#chunks.shift();
      if (chunk !== undefined) {
        if (this.#chunks.length === 0 && !this.#ended) this.#response.resume();
        return { done: false, value: chunk };
      }
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#ended) return { done: true, value: undefined };
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #finish(): void {
    this.#detach();
    this.#notify();
  }

  #notify(): void {
    const waiting = this.#wake;
    this.#wake = undefined;
    waiting?.();
  }
}
