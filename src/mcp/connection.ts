/**
 * A connection to one remote MCP server that a host can treat as if it never died. The host
 * hands it JSON-RPC messages and gets JSON-RPC messages back; in between, the connection
 * keeps the session alive across token refreshes, credential changes, lost sessions and
 * broken streams:
 *
 * - 404 on a request carrying a session id: the server forgot the session. Re-send the host's
 *   cached `initialize`, then `notifications/initialized`, re-subscribe resources, and resend
 *   the request (a 404 means it was not processed). The host sees nothing.
 * - A response stream that breaks: resume it with Last-Event-ID when the server gave event
 *   ids; otherwise, and after repeated failures, start a new session. The request is resent
 *   only if running it twice is harmless (ReplayPolicy); else the host gets a clear error.
 * - Undecodable data on a stream: the session is not trusted further; a new one is made.
 * - Credential changes from any process (login, logout, `latchkey reconnect`) arrive through
 *   the manager's store watch and apply without a restart.
 * - Every wait is bounded: each host request has a deadline and a clear error when it passes.
 * - A request that carries a 2026-07-28 protocol version in `_meta` goes sessionless, with the
 *   request-metadata headers; a broken stream re-issues it (TR-32). A 2025-era host in front
 *   of a 2026-only server is bridged to it (era-bridge.ts).
 *
 * Everything it says names its server, and it only ever speaks for that one server.
 */
import { buildParts, observeAnswer, type Parts } from './connection-parts.js';
import { type ConnectionOptions, DEFAULT_REQUEST_TIMEOUT_MS, INTERNAL_PREFIX } from './connection-options.js';
import {
  errorResponse,
  isNotification,
  isRequest,
  isResponse,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from './jsonrpc.js';
import type { Pending } from './pending.js';
import { type Outcome, recover, toRpcError } from './recover.js';
import { modernRevision } from './request-metadata.js';
import * as rpcErrors from './rpc-errors.js';

export type { Authorizer, ConnectionOptions, TransportStrategy } from './connection-options.js';

/** Re-tries of one host request across re-handshakes, logins and backoffs. */
const MAX_ROUNDS = 6;
/** A listen stream that lived this long was healthy: its backoff starts afresh. */
const HEALTHY_MS = 10_000;

export class McpConnection {
  /** Messages for the host: responses, server notifications and server requests. */
  onmessage: ((message: JsonRpcMessage) => void) | undefined;
  /**
   * Backpressure from the host: a promise that settles once the host takes messages again,
   * or undefined while it does. Nothing more is read from the server while one is pending.
   */
  outputReady: (() => Promise<void> | undefined) | undefined;

  readonly server: string;
  readonly #p: Parts;
  #closed = false;
  /** The host speaks 2026-07-28: no sessions, and no notifications go over HTTP. */
  #modernHost = false;

  constructor(options: ConnectionOptions) {
    this.#p = buildParts(options, {
      deliver: (message) => this.#fromServer(message),
      ready: () => this.outputReady?.(),
      startInternal: (request) => this.#startRequest(request, true),
      closed: () => this.#closed,
    });
    this.server = this.#p.server;
  }

  /** The negotiated transport, once the first exchange decided it. */
  get transport(): 'streamable-http' | 'sse' | undefined {
    return this.#p.wires.transport;
  }

  /** Is a 2025-era host bridged to a server that speaks only 2026-07-28 (era-bridge.ts)? */
  get bridged(): boolean {
    return this.#p.bridging.active;
  }

  /** How many times the session was re-established (for diagnostics and tests). */
  get sessionEpoch(): number {
    return this.#p.session.epoch;
  }

  /** Hand a message from the host to the server. Never throws: failures come back as responses. */
  send(message: JsonRpcMessage): void {
    if (this.#closed) return;
    if (isRequest(message)) this.#startRequest(message);
    else if (isNotification(message)) this.#forwardNotification(message);
    else if (isResponse(message))
      void this.#p.wires
        .post(message)
        .catch((error: unknown) => this.#debugFailure('a response to the server', error));
  }

  /** Drop the session and make a new one (`latchkey reconnect`). */
  async reconnect(reason = 'reconnect requested'): Promise<void> {
    await this.#p.session.rehandshake(this.#p.session.epoch, reason);
  }

  /** Fail what is pending, end the session at the server and stop listening. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#p.credentials.dispose();
    this.#p.listen.stop();
    for (const pending of this.#p.pending.values()) {
      const { id, method } = pending.request;
      this.#answer(pending, errorResponse(id, rpcErrors.connectionLost(this.server, method, undefined)));
    }
    await this.#p.wires.close();
  }

  #startRequest(hostRequest: JsonRpcRequest, internal = false): Pending {
    let request = hostRequest;
    if (modernRevision(request) !== undefined && !internal) this.#modernHost = true;
    if (request.method === 'initialize') {
      // A host (re)starting the handshake starts a new session, and finds the era anew.
      this.#p.session.begin(request);
      this.#p.bridging.reset();
    } else {
      request = this.#p.bridging.translate(request);
    }
    const revision = modernRevision(request);
    const timeoutMs = this.#p.options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const pending = this.#p.pending.open(request, {
      revision,
      internal,
      // A subscriptions/listen stream is meant to stay open: the host ends it by cancelling.
      timeoutMs: isListen(request, revision) ? undefined : timeoutMs,
      onTimeout: (timedOut) => this.#timedOut(timedOut, timeoutMs),
    });
    void this.#dispatch(pending);
    return pending;
  }

  /** Attempt after attempt until an answer, a failure to tell the host, or the round limit. */
  async #dispatch(pending: Pending): Promise<void> {
    const { request, revision } = pending;
    const endless = isListen(request, revision);
    let outcome: Outcome = { error: undefined };
    let lastError: unknown;
    for (let round = 0; (endless || round < MAX_ROUNDS) && !pending.settled; round++) {
      let epoch = this.#p.session.epoch;
      const started = Date.now();
      try {
        epoch = await this.#ready();
        const signal = pending.abort.signal;
        const response =
          revision === undefined
            ? await this.#p.wires.exchange(request, signal)
            : await this.#p.sessionless.exchange(request, revision, round, signal);
        this.#answer(pending, observeAnswer(this.#p, request, response, revision));
        return;
      } catch (error) {
        if (pending.settled) return;
        lastError = error;
        if (endless && Date.now() - started > HEALTHY_MS) round = 0;
        outcome = await recover(this.#p, pending, error, epoch, round).catch((e: unknown) => ({ error: e }));
        if (outcome !== 'retry') break;
      }
    }
    if (pending.settled) return;
    // Out of rounds: the last failure is the answer.
    if (outcome === 'retry') outcome = { error: lastError };
    const { id } = request;
    this.#answer(
      pending,
      'result' in outcome
        ? { jsonrpc: '2.0', id, result: outcome.result }
        : errorResponse(id, toRpcError(this.#p, request, outcome.error)),
    );
  }

  /** Wait out a re-handshake in progress; refuse at once after a logout. */
  async #ready(): Promise<number> {
    const epoch = await this.#p.session.settled();
    if (this.#p.credentials.loggedOut) {
      throw new rpcErrors.RpcFailure(rpcErrors.loggedOut(this.server, this.#p.describe));
    }
    return epoch;
  }

  #answer(pending: Pending, response: JsonRpcResponse): void {
    if (!this.#p.pending.settle(pending)) return;
    if (response.error !== undefined)
      this.#p.log.warn(response.error.message, { method: pending.request.method });
    if (!pending.internal) this.onmessage?.(response);
  }

  #timedOut(pending: Pending, timeoutMs: number): void {
    const { request } = pending;
    this.#answer(
      pending,
      errorResponse(request.id, rpcErrors.timedOut(this.server, request.method, timeoutMs)),
    );
    // 2026-07-28: closing the response stream (the abort above) is the cancellation.
    if (pending.revision === undefined && request.method !== 'initialize') this.#p.wires.cancel(request.id);
  }

  #forwardNotification(message: JsonRpcNotification): void {
    const initialized = message.method === 'notifications/initialized';
    if (initialized) this.#p.session.noteInitialized(message);
    if (message.method === 'notifications/cancelled') this.#p.pending.cancel(message.params?.['requestId']);
    if (this.#p.bridging.active) {
      // The bridged host's `initialized` is the moment a 2025-era session starts listening.
      if (initialized) this.#p.bridging.startListen();
      return;
    }
    if (this.#modernHost && !this.#p.session.started) {
      // 2026-07-28 has no client notifications over HTTP; a cancel is the stream's closing.
      this.#p.log.debug('a notification of a 2026-07-28 host stays here', { method: message.method });
      return;
    }
    void (async () => {
      await this.#ready();
      await this.#p.wires.post(message);
      if (initialized) this.#p.startListening();
    })().catch((error: unknown) => this.#debugFailure(message.method, error));
  }

  /** A message that is not the answer being waited for. */
  #fromServer(message: JsonRpcMessage): void {
    if (isResponse(message)) {
      const internal = typeof message.id === 'string' && message.id.startsWith(INTERNAL_PREFIX);
      if (!internal) this.#p.log.debug('dropped an answer nobody waits for', { id: String(message.id) });
      return;
    }
    if (!this.#p.bridging.hides(message)) this.onmessage?.(message);
  }

  #debugFailure(what: string, error: unknown): void {
    this.#p.log.debug(`${what} failed`, { error: error instanceof Error ? error.message : String(error) });
  }
}

/** A 2026-07-28 subscriptions/listen: a stream of notifications, kept open until cancelled. */
function isListen(request: JsonRpcRequest, revision: string | undefined): boolean {
  return revision !== undefined && request.method === 'subscriptions/listen';
}
