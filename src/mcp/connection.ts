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
import type { NextAction } from '../next-action.js';
import { canonicalServer } from '../credential/key.js';
import { secrets } from '../credential/redact.js';
import { ErrorCode, isLatchkeyError, type LatchkeyError } from '../errors.js';
import type { CredentialManager } from '../lifecycle/manager.js';
import { sleep } from '../lifecycle/lease.js';
import { createLogger, type Logger } from '../log.js';
import { EventType, type LifecycleEvent } from '../store/contract.js';
import { createAuthFetch } from './auth-fetch.js';
import { sameOriginRedirects } from './redirect-policy.js';
import {
  errorResponse,
  idKey,
  isNotification,
  isRequest,
  isResponse,
  type JsonRpcError,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from './jsonrpc.js';
import {
  type Bridge,
  bridged,
  bridgeFrom,
  bridgeMeta,
  discoverRequest,
  hiddenFromBridgedHost,
  initializeResult,
  isModernRefusal,
  listenRequest,
  MODERN_REVISION,
} from './era-bridge.js';
import { LegacySseWire } from './legacy-sse.js';
import { ReplayPolicy } from './replay-policy.js';
import { ModernErrorCode, modernRevision, requestMetadataHeaders } from './request-metadata.js';
import * as rpcErrors from './rpc-errors.js';
import { DEFAULT_MAX_MESSAGE_BYTES, MessageTooLargeError } from './sse.js';
import { type StreamProgress, StreamableHttpWire } from './streamable-http.js';
import { ToolHeaders } from './tool-headers.js';
import { HttpStatusError, isConnectRefused, StreamBrokenError } from './wire-errors.js';

export type TransportStrategy = 'auto' | 'streamable-http' | 'sse';

/**
 * Called when a request needs a login. Resolves once a credential exists; rejects with a
 * JSON-RPC error for the host (for example device-flow instructions) or a LatchkeyError.
 */
export type Authorizer = (error: LatchkeyError, signal: AbortSignal) => Promise<void>;

export interface ConnectionOptions {
  /** The MCP server URL. */
  server: string | URL;
  manager: CredentialManager;
  /** `auto` (default) tries Streamable HTTP and falls back to HTTP+SSE on 404/405. */
  transport?: TransportStrategy;
  /**
   * `auto` (default): when a server refuses a 2025-era host's `initialize` as a 2026-only
   * server does, bridge the host to 2026-07-28 (era-bridge.ts). `legacy`: never; the host
   * gets the refusal.
   */
  protocol?: 'auto' | 'legacy';
  /** Extra headers on every request to the server. */
  headers?: Readonly<Record<string, string>>;
  /** The fetch under the auth layer. Default: the global fetch. */
  fetch?: typeof fetch;
  /** Deadline for each host request, in ms. Default 300 000 (5 minutes). */
  requestTimeoutMs?: number;
  /** Deadline for a (re-)initialization and for opening streams, in ms. Default 30 000. */
  connectTimeoutMs?: number;
  /**
   * Add latchkey's bearer token. Default true. False only when the caller authenticates by
   * other means (a static Authorization header).
   */
  authenticate?: boolean;
  /** Runs logins when a request needs one. Default: none, the host gets an auth error. */
  authorize?: Authorizer;
  /** Stream failures in a row before the session is dropped and made anew. Default 3. */
  maxStreamFailures?: number;
  /**
   * Bytes one message from the server may have; a bigger answer is dropped and its request
   * answered with a MESSAGE_TOO_LARGE error. Default 32 MiB (big tool results are legitimate).
   */
  maxMessageBytes?: number;
  logger?: Logger;
  subject?: string;
  /**
   * Words for an error's next action in the answers the host reads. Default: the library's
   * neutral words; the proxy passes the CLI's (`latchkey login …`).
   */
  describeNext?: (action: NextAction) => string;
}

interface Pending {
  readonly request: JsonRpcRequest;
  /** The request's 2026-07-28 protocol version, when it is a modern (sessionless) request. */
  readonly revision: string | undefined;
  readonly abort: AbortController;
  readonly timer: NodeJS.Timeout | undefined;
  settled: boolean;
  /** A HeaderMismatch was answered by reading tools/list afresh; once per request. */
  relearned?: boolean;
  /** latchkey's own request: its answer is not the host's. */
  readonly internal: boolean;
}

/** Re-tries of one host request across re-handshakes, logins and backoffs. */
const MAX_ROUNDS = 6;
/** tools/list pages read when relearning `x-mcp-header` annotations. */
const MAX_TOOL_PAGES = 20;
const INTERNAL_PREFIX = 'latchkey-';
/** Why a settled request's exchange is stopped; one object, not a DOMException per answer. */
const ANSWERED = new Error('the request was answered');

export class McpConnection {
  /** Messages for the host: responses, server notifications and server requests. */
  onmessage: ((message: JsonRpcMessage) => void) | undefined;
  /**
   * Backpressure from the host: a promise that settles once the host takes messages again,
   * or undefined while it does. Nothing more is read from the server while one is pending.
   */
  outputReady: (() => Promise<void> | undefined) | undefined;

  readonly server: string;
  readonly #o: ConnectionOptions;
  readonly #log: Logger;
  readonly #fetch: typeof fetch;
  readonly #replay = new ReplayPolicy();
  readonly #tools = new ToolHeaders();
  readonly #pending = new Map<string, Pending>();
  readonly #legacyWaiters = new Map<
    string,
    { resolve(r: JsonRpcResponse): void; reject(e: unknown): void }
  >();
  readonly #subscriptions = new Set<string>();
  readonly #unsubscribe: () => void;
  #mode: 'http' | 'sse' | undefined;
  #http: StreamableHttpWire;
  #sse: LegacySseWire;
  #init: { request: JsonRpcRequest; initialized?: JsonRpcNotification; done: boolean } | undefined;
  #epoch = 0;
  #handshake: Promise<void> | undefined;
  #listening: AbortController | undefined;
  #loggedOut = false;
  #closed = false;
  /** The host speaks 2026-07-28: no sessions, and no notifications go over HTTP. */
  #modernHost = false;
  /** A 2025-era host bridged to a 2026-only server (era-bridge.ts). */
  #bridge: Bridge | undefined;
  #bridgeListen: Pending | undefined;
  #nextInternalId = 0;
  /** The store's newest event when the connection started: older ones are history. */
  readonly #eventCursor: Promise<number>;
  #lastEventId: number | undefined;

  constructor(options: ConnectionOptions) {
    this.#o = options;
    this.server = canonicalServer(String(options.server));
    this.#log = (options.logger ?? createLogger()).child({ server: this.server });
    this.#fetch =
      options.authenticate === false
        ? sameOriginRedirects(this.server, options.fetch ?? globalThis.fetch)
        : createAuthFetch(this.server, {
            manager: options.manager,
            interactive: false,
            ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
            ...(options.subject === undefined ? {} : { subject: options.subject }),
          });
    const wire = {
      url: new URL(String(options.server)),
      fetch: this.#fetch,
      headers: options.headers ?? {},
      maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      ready: () => this.outputReady?.(),
    };
    // Custom headers often carry API keys; a server echoing one gets it scrubbed (network-text.ts).
    for (const value of Object.values(wire.headers)) secrets.add(value);
    this.#http = new StreamableHttpWire(wire);
    this.#sse = new LegacySseWire(wire);
    if (options.transport === 'sse') this.#mode = 'sse';
    if (options.transport === 'streamable-http') this.#mode = 'http';
    this.#eventCursor = options.manager.store.lastEventId().catch(() => 0);
    const onEvent = (event: LifecycleEvent): void => this.#onCredentialEvent(event);
    options.manager.on('event', onEvent);
    this.#unsubscribe = () => options.manager.off('event', onEvent);
  }

  /** The negotiated transport, once the first exchange decided it. */
  get transport(): 'streamable-http' | 'sse' | undefined {
    return this.#mode === undefined ? undefined : this.#mode === 'http' ? 'streamable-http' : 'sse';
  }

  /** Is a 2025-era host bridged to a server that speaks only 2026-07-28 (era-bridge.ts)? */
  get bridged(): boolean {
    return this.#bridge !== undefined;
  }

  /** How many times the session was re-established (for diagnostics and tests). */
  get sessionEpoch(): number {
    return this.#epoch;
  }

  /** Hand a message from the host to the server. Never throws: failures come back as responses. */
  send(message: JsonRpcMessage): void {
    if (this.#closed) return;
    if (isRequest(message)) this.#startRequest(message);
    else if (isNotification(message)) this.#forwardNotification(message);
    else if (isResponse(message))
      void this.#post(message).catch((error: unknown) =>
        this.#debugFailure('a response to the server', error),
      );
  }

  /** Drop the session and make a new one (`latchkey reconnect`). */
  async reconnect(reason = 'reconnect requested'): Promise<void> {
    await this.#rehandshake(this.#epoch, reason);
  }

  /** Fail what is pending, end the session at the server and stop listening. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    this.#stopListening();
    for (const pending of this.#pending.values()) {
      this.#answer(
        pending,
        errorResponse(
          pending.request.id,
          rpcErrors.connectionLost(this.server, pending.request.method, undefined),
        ),
      );
    }
    if (this.#mode === 'http') await this.#http.terminate();
    this.#sse.close();
  }

  // ---- host requests ----

  #startRequest(hostRequest: JsonRpcRequest, internal = false): Pending {
    let request = hostRequest;
    const key = idKey(request.id);
    if (modernRevision(request) !== undefined && !internal) this.#modernHost = true;
    if (request.method === 'initialize') {
      // A host (re)starting the handshake starts a new session, and finds the era anew.
      this.#init = { request, done: false };
      this.#subscriptions.clear();
      this.#http.sessionId = undefined;
      this.#bridge = undefined;
      this.#stopBridgeListen();
    } else if (this.#bridge !== undefined && modernRevision(request) === undefined) {
      request = bridged(request, this.#bridge);
    }
    const revision = modernRevision(request);
    const timeoutMs = this.#o.requestTimeoutMs ?? 300_000;
    const abort = new AbortController();
    const onTimeout = (): void => {
      this.#answer(
        pending,
        errorResponse(request.id, rpcErrors.timedOut(this.server, request.method, timeoutMs)),
      );
      // 2026-07-28: closing the response stream (the abort above) is the cancellation.
      if (revision === undefined) this.#cancelAtServer(request);
    };
    const pending: Pending = {
      request,
      revision,
      abort,
      internal,
      settled: false,
      // A subscriptions/listen stream is meant to stay open: the host ends it by cancelling.
      timer: isListen(request, revision) ? undefined : setTimeout(onTimeout, timeoutMs),
    };
    this.#pending.get(key)?.abort.abort();
    this.#pending.set(key, pending);
    void this.#dispatch(pending);
    return pending;
  }

  async #dispatch(pending: Pending): Promise<void> {
    const { request, revision } = pending;
    const endless = isListen(request, revision);
    let lastError: unknown;
    for (let round = 0; (endless || round < MAX_ROUNDS) && !pending.settled; round++) {
      let epoch = this.#epoch;
      const started = Date.now();
      try {
        epoch = await this.#ready();
        const response =
          revision === undefined
            ? await this.#exchange(request, pending.abort.signal)
            : await this.#exchangeModern(request, revision, round, pending.abort.signal);
        this.#answer(pending, this.#observe(request, response, revision));
        return;
      } catch (error) {
        if (pending.settled) return;
        lastError = error;
        // A listen stream that lived a while was healthy: its backoff starts afresh.
        if (endless && Date.now() - started > 10_000) round = 0;
        const next = await this.#recover(pending, error, epoch, round).catch((e: unknown) => e);
        if (next instanceof Answered) {
          this.#answer(pending, { jsonrpc: '2.0', id: request.id, result: next.result });
          return;
        }
        if (next !== 'retry') {
          this.#answer(pending, errorResponse(request.id, this.#toRpcError(request, next)));
          return;
        }
      }
    }
    if (!pending.settled)
      this.#answer(pending, errorResponse(request.id, this.#toRpcError(request, lastError)));
  }

  /**
   * Decide what a failed attempt means. Returns 'retry' to send again, or the error to
   * answer the host with.
   */
  async #recover(pending: Pending, error: unknown, epoch: number, round: number): Promise<'retry' | unknown> {
    const { request } = pending;
    const signal = pending.abort.signal;
    if (error instanceof MessageTooLargeError) {
      // Sending it again would only bring the same answer.
      return new rpcErrors.RpcFailure(rpcErrors.messageTooLarge(this.server, request.method, error.limit));
    }
    if (isLatchkeyError(error) && error.code === ErrorCode.LOGIN_REQUIRED) {
      // A logout elsewhere may be in the store but not yet delivered by the watch; a login
      // must not start on the heels of one.
      await this.#catchUpOnEvents();
      // latchkey's own background requests never start a login; the host's next request may.
      if (this.#loggedOut || this.#o.authorize === undefined || round > 1 || pending.internal) return error;
      await this.#o.authorize(error, signal);
      return 'retry';
    }
    if (error instanceof HttpStatusError) {
      if (
        request.method === 'initialize' &&
        pending.revision === undefined &&
        this.#o.protocol !== 'legacy' &&
        isModernRefusal(error.status, error.rpcError)
      ) {
        return this.#bridgeInitialize(pending, error);
      }
      // A refusal in words (4xx); 429 and 5xx are waited out below like any other.
      const refused = error.status >= 400 && error.status < 500 && error.status !== 429;
      if (pending.revision !== undefined && error.rpcError !== undefined && refused) {
        return this.#modernRefusal(pending, error.rpcError);
      }
      if (error.sessionExpired) {
        this.#log.info('the server forgot the session; re-initializing', { method: request.method });
        if (request.method !== 'initialize') await this.#rehandshake(epoch, 'session expired (HTTP 404)');
        else this.#http.sessionId = undefined;
        return 'retry';
      }
      if (error.status === 429 || error.status === 503) {
        await sleep(error.retryAfterMs ?? backoffMs(round), signal);
        return 'retry';
      }
      if (
        error.status === 400 &&
        this.#mode === 'http' &&
        this.#http.sessionId === undefined &&
        this.#init?.done === true
      ) {
        // Our session was dropped (a failed re-handshake); make one before trying again.
        await this.#rehandshake(epoch, 'no session');
        return 'retry';
      }
      if (error.status >= 500 && this.#replay.isRepeatable(request)) {
        await sleep(backoffMs(round), signal);
        return 'retry';
      }
      return error;
    }
    if (error instanceof StreamBrokenError && pending.revision !== undefined) {
      // 2026-07-28 (TR-32): a broken stream lost the request, and closing it cancelled it at
      // the server; the client re-issues it under a new id.
      this.#log.info('a response stream broke; re-issuing the request', { method: request.method });
      await sleep(backoffMs(round, error.retryMs), signal);
      return 'retry';
    }
    if (error instanceof StreamBrokenError) {
      if (error.garbage) void this.#rehandshake(epoch, 'undecodable data on a stream');
      if (!this.#replay.isRepeatable(request)) return new LostInFlight(error);
      this.#log.info('a response stream broke; sending the request again', { method: request.method });
      await sleep(backoffMs(round, error.retryMs), signal);
      return 'retry';
    }
    if (isConnectRefused(error)) {
      // Nothing reached the server; it may be restarting.
      await sleep(backoffMs(round), signal);
      return 'retry';
    }
    if (signal.aborted) return error;
    const reissue = pending.revision !== undefined || this.#replay.isRepeatable(request);
    if (error instanceof TypeError && !reissue) return new LostInFlight(error);
    if (error instanceof TypeError) {
      await sleep(backoffMs(round), signal);
      return 'retry';
    }
    return error;
  }

  #toRpcError(request: JsonRpcRequest, error: unknown): JsonRpcError {
    if (error instanceof rpcErrors.RpcFailure) return error.rpc;
    if (error instanceof LostInFlight)
      return rpcErrors.connectionLost(this.server, request.method, error.cause);
    if (isLatchkeyError(error) && error.code === ErrorCode.LOGIN_REQUIRED && this.#loggedOut) {
      return rpcErrors.loggedOut(this.server);
    }
    return (
      rpcErrors.fromLatchkeyError(this.server, error, this.#o.describeNext) ??
      rpcErrors.unavailable(this.server, request.method, error)
    );
  }

  /** Wait out a re-handshake in progress; refuse at once after a logout. */
  async #ready(): Promise<number> {
    while (this.#handshake !== undefined) await this.#handshake.catch(() => undefined);
    if (this.#loggedOut) throw new rpcErrors.RpcFailure(rpcErrors.loggedOut(this.server));
    return this.#epoch;
  }

  #answer(pending: Pending, response: JsonRpcResponse): void {
    if (pending.settled) return;
    pending.settled = true;
    clearTimeout(pending.timer);
    pending.abort.abort(ANSWERED);
    const key = idKey(pending.request.id);
    if (this.#pending.get(key) === pending) this.#pending.delete(key);
    if (response.error !== undefined) {
      this.#log.warn(response.error.message, { method: pending.request.method });
    }
    if (!pending.internal) this.onmessage?.(response);
  }

  /**
   * Bookkeeping from answers passing through: the handshake, subscriptions, tool hints. Returns
   * the answer for the host, which for a 2026-07-28 tools/list lacks the tools whose
   * `x-mcp-header` annotations are invalid (the spec says to drop them).
   */
  #observe(
    request: JsonRpcRequest,
    response: JsonRpcResponse,
    revision: string | undefined,
  ): JsonRpcResponse {
    if (response.error !== undefined) return response;
    const result = response.result as Record<string, unknown> | undefined;
    if (request.method === 'tools/list') {
      this.#replay.learnTools(result, request.params?.['cursor'] === undefined);
      if (revision !== undefined) return { ...response, result: this.#learnToolHeaders(request, result) };
    }
    if (request.method === 'initialize' && this.#init?.request === request) {
      this.#init.done = true;
      const version = result?.['protocolVersion'];
      if (typeof version === 'string') this.#http.protocolVersion = version;
    } else if (request.method === 'resources/subscribe') {
      const uri = request.params?.['uri'];
      if (typeof uri === 'string') this.#subscriptions.add(uri);
    } else if (request.method === 'resources/unsubscribe') {
      const uri = request.params?.['uri'];
      if (typeof uri === 'string') this.#subscriptions.delete(uri);
    }
    return response;
  }

  #learnToolHeaders(request: JsonRpcRequest, result: unknown): unknown {
    const learned = this.#tools.learn(result, request.params?.['cursor'] === undefined);
    for (const { name, reason } of learned.rejected) {
      this.#log.warn(`left the tool "${name}" out of the list: ${reason}`);
    }
    return learned.result;
  }

  #forwardNotification(message: JsonRpcNotification): void {
    if (message.method === 'notifications/initialized' && this.#init !== undefined) {
      this.#init.initialized = message;
    }
    if (message.method === 'notifications/cancelled') {
      const id = message.params?.['requestId'];
      const pending =
        typeof id === 'string' || typeof id === 'number' ? this.#pending.get(idKey(id)) : undefined;
      if (pending !== undefined) {
        // The host gave up on it; the spec says no answer follows.
        pending.settled = true;
        clearTimeout(pending.timer);
        pending.abort.abort();
        this.#pending.delete(idKey(pending.request.id));
      }
    }
    if (this.#bridge !== undefined) {
      // The bridged host's `initialized` is the moment a 2025-era session starts listening.
      if (message.method === 'notifications/initialized') this.#startBridgeListen();
      return;
    }
    if (this.#modernHost && this.#init === undefined) {
      // 2026-07-28 has no client notifications over HTTP; a cancel is the stream's closing.
      this.#log.debug('a notification of a 2026-07-28 host stays here', { method: message.method });
      return;
    }
    void (async () => {
      await this.#ready();
      await this.#post(message);
      if (message.method === 'notifications/initialized') this.#startListening();
    })().catch((error: unknown) => this.#debugFailure(message.method, error));
  }

  #cancelAtServer(request: JsonRpcRequest): void {
    if (request.method === 'initialize') return;
    const cancel: JsonRpcNotification = {
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: request.id, reason: 'timed out in latchkey' },
    };
    void this.#post(cancel).catch(() => undefined);
  }

  // ---- the wire ----

  /** Send a request and wait for its answer; other messages on the way go to the host. */
  async #exchange(request: JsonRpcRequest, signal: AbortSignal): Promise<JsonRpcResponse> {
    if (this.#mode === 'sse') return this.#exchangeSse(request, signal);
    try {
      const response = await this.#exchangeHttp(request, signal);
      this.#mode = 'http';
      return response;
    } catch (error) {
      const fallBack =
        this.#mode === undefined &&
        this.#o.transport !== 'streamable-http' &&
        error instanceof HttpStatusError &&
        (error.status === 404 || error.status === 405) &&
        !error.sessionExpired;
      if (!fallBack) throw error;
      this.#log.info('the server does not speak Streamable HTTP; using the HTTP+SSE transport', {
        status: error.status,
      });
      this.#mode = 'sse';
      return this.#exchangeSse(request, signal);
    }
  }

  async #exchangeHttp(request: JsonRpcRequest, signal: AbortSignal): Promise<JsonRpcResponse> {
    const key = idKey(request.id);
    let answer: JsonRpcResponse | undefined;
    const deliver = (message: JsonRpcMessage): void => {
      if (isResponse(message) && idKey(message.id) === key) answer = message;
      else this.#fromServer(message);
    };
    const progress: StreamProgress = {};
    try {
      await this.#http.post(request, deliver, signal, progress);
    } catch (error) {
      if (!(error instanceof StreamBrokenError) || error.garbage || progress.lastEventId === undefined)
        throw error;
      await this.#resume(key, deliver, signal, progress, error);
    }
    if (answer === undefined)
      throw new StreamBrokenError('no answer arrived', progress.lastEventId, progress.retryMs, false);
    return answer;
  }

  /**
   * A 2026-07-28 request: one POST with the request-metadata headers, outside any session.
   * After the first round it goes under a new id (TR-32); the host gets its own id back.
   */
  async #exchangeModern(
    request: JsonRpcRequest,
    revision: string,
    round: number,
    signal: AbortSignal,
  ): Promise<JsonRpcResponse> {
    const wire = round === 0 ? request : { ...request, id: `${INTERNAL_PREFIX}${++this.#nextInternalId}` };
    const key = idKey(wire.id);
    let answer: JsonRpcResponse | undefined;
    const deliver = (message: JsonRpcMessage): void => {
      if (isResponse(message) && idKey(message.id) === key) answer = message;
      else this.#fromServer(message);
    };
    await this.#http.post(wire, deliver, signal, {}, requestMetadataHeaders(wire, revision, this.#tools));
    if (answer === undefined) throw new StreamBrokenError('no answer arrived', undefined, undefined, false);
    return { ...answer, id: request.id };
  }

  /**
   * A 2026-07-28 server refused a request with a JSON-RPC error. A HeaderMismatch on
   * tools/call may mean the tool's `x-mcp-header` annotations changed (or were never read):
   * the spec says to read tools/list and try again. Any other refusal is the host's to see.
   */
  async #modernRefusal(pending: Pending, rpc: JsonRpcError): Promise<'retry' | unknown> {
    const { request, revision } = pending;
    const mismatch = rpc.code === ModernErrorCode.HEADER_MISMATCH && request.method === 'tools/call';
    if (!mismatch || pending.relearned === true || revision === undefined)
      return new rpcErrors.RpcFailure(rpc);
    pending.relearned = true;
    this.#log.info('the server refused the request headers; reading tools/list again', {
      method: request.method,
    });
    await this.#relearnTools(request, revision, pending.abort.signal);
    return 'retry';
  }

  /** Read every page of tools/list with the host's request metadata, for `x-mcp-header`. */
  async #relearnTools(like: JsonRpcRequest, revision: string, signal: AbortSignal): Promise<void> {
    const meta = like.params?.['_meta'];
    let cursor: unknown;
    for (let page = 0; page < MAX_TOOL_PAGES; page++) {
      const params = { _meta: meta, ...(cursor === undefined ? {} : { cursor }) };
      const request: JsonRpcRequest = {
        jsonrpc: '2.0',
        id: `${INTERNAL_PREFIX}${++this.#nextInternalId}`,
        method: 'tools/list',
        params,
      };
      const response = await this.#exchangeModern(request, revision, 0, signal);
      if (response.error !== undefined) return;
      this.#learnToolHeaders(request, response.result);
      cursor = (response.result as { nextCursor?: unknown } | undefined)?.nextCursor;
      if (typeof cursor !== 'string') return;
    }
  }

  /** Resume a broken response stream with Last-Event-ID, a few times with backoff. */
  async #resume(
    key: string,
    deliver: (message: JsonRpcMessage) => void,
    signal: AbortSignal,
    progress: StreamProgress,
    first: StreamBrokenError,
  ): Promise<void> {
    let last: unknown = first;
    const attempts = this.#o.maxStreamFailures ?? 3;
    for (let attempt = 0; attempt < attempts; attempt++) {
      await sleep(backoffMs(attempt, progress.retryMs), signal);
      const lastEventId = progress.lastEventId;
      if (lastEventId === undefined) break;
      try {
        this.#log.debug('resuming a broken response stream', { attempt: attempt + 1 });
        await this.#http.resume(new Set([key]), deliver, signal, { ...progress, lastEventId });
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

  async #exchangeSse(request: JsonRpcRequest, signal: AbortSignal): Promise<JsonRpcResponse> {
    await this.#ensureSseStream();
    const key = idKey(request.id);
    const answer = new Promise<JsonRpcResponse>((resolve, reject) => {
      this.#legacyWaiters.set(key, { resolve, reject });
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
    answer.catch(() => undefined);
    try {
      await this.#sse.post(request, signal);
      return await answer;
    } finally {
      this.#legacyWaiters.delete(key);
    }
  }

  #sseOpen: Promise<void> | undefined;

  /** The legacy transport's stream is the session: open it when there is none. */
  async #ensureSseStream(): Promise<void> {
    this.#sseOpen ??= (async () => {
      const epoch = this.#epoch;
      const { closed } = await this.#sse.open((m) => this.#fromServer(m), this.#o.connectTimeoutMs ?? 30_000);
      void closed.catch((error: unknown) => {
        this.#sseOpen = undefined;
        for (const waiter of this.#legacyWaiters.values()) waiter.reject(error);
        this.#legacyWaiters.clear();
        if (this.#closed || epoch !== this.#epoch) return;
        this.#log.info('the SSE stream ended; starting a new session', { reason: (error as Error).message });
        void this.#rehandshake(epoch, 'SSE stream ended').catch(() => undefined);
      });
    })().catch((error: unknown) => {
      this.#sseOpen = undefined;
      throw error;
    });
    return this.#sseOpen;
  }

  /** A message that is not the answer being waited for. */
  #fromServer(message: JsonRpcMessage): void {
    if (isResponse(message)) {
      const key = idKey(message.id);
      const waiter = this.#legacyWaiters.get(key);
      if (waiter !== undefined) {
        waiter.resolve(message);
        return;
      }
      if (typeof message.id === 'string' && message.id.startsWith(INTERNAL_PREFIX)) return;
      this.#log.debug('dropped an answer nobody waits for', { id: String(message.id) });
      return;
    }
    if (this.#bridge !== undefined && 'method' in message && hiddenFromBridgedHost(message.method)) return;
    this.onmessage?.(message);
  }

  async #post(message: JsonRpcMessage): Promise<void> {
    const signal = AbortSignal.timeout(this.#o.connectTimeoutMs ?? 30_000);
    if (this.#mode === 'sse') {
      await this.#ensureSseStream();
      await this.#sse.post(message, signal);
      return;
    }
    await this.#http.post(message, (m) => this.#fromServer(m), signal);
  }

  /** An internal request (re-handshake, re-subscribe): answered here, never seen by the host. */
  async #internal(method: string, params: Record<string, unknown> | undefined): Promise<unknown> {
    const request: JsonRpcRequest = {
      jsonrpc: '2.0',
      id: `${INTERNAL_PREFIX}${++this.#nextInternalId}`,
      method,
      ...(params === undefined ? {} : { params }),
    };
    const response = await this.#exchange(request, AbortSignal.timeout(this.#o.connectTimeoutMs ?? 30_000));
    if (response.error !== undefined) {
      throw new Error(`${method} was refused: ${response.error.message}`);
    }
    return response.result;
  }

  // ---- sessions ----

  /**
   * Drop the session and build a new one from the host's cached handshake. Single-flight:
   * callers that saw the same failed session share one re-handshake.
   */
  #rehandshake(epoch: number, reason: string): Promise<void> {
    if (this.#handshake !== undefined) return this.#handshake;
    if (epoch !== this.#epoch || this.#closed) return Promise.resolve();
    this.#epoch++;
    this.#handshake = this.#handshakeNow(reason).finally(() => {
      this.#handshake = undefined;
    });
    return this.#handshake;
  }

  async #handshakeNow(reason: string): Promise<void> {
    this.#stopListening();
    if (this.#bridge !== undefined) {
      // No session to renew: the listen stream is re-opened under the current credential.
      this.#stopBridgeListen();
      this.#startBridgeListen();
      return;
    }
    const old = this.#http.sessionId;
    if (old !== undefined && reason !== 'session expired (HTTP 404)') void this.#http.terminate();
    this.#http.sessionId = undefined;
    if (this.#mode === 'sse') {
      this.#sse.close();
      this.#sseOpen = undefined;
    }
    const init = this.#init;
    if (init === undefined || !init.done) return;
    const started = Date.now();
    const result = (await this.#internal('initialize', init.request.params)) as
      Record<string, unknown> | undefined;
    const version = result?.['protocolVersion'];
    if (typeof version === 'string') this.#http.protocolVersion = version;
    if (init.initialized !== undefined) await this.#post(init.initialized);
    for (const uri of this.#subscriptions) await this.#internal('resources/subscribe', { uri });
    this.#log.info('session re-established', { reason, ms: Date.now() - started });
    this.#startListening();
  }

  // ---- the 2026-07-28 bridge ----

  /**
   * The server refused the host's 2025-era `initialize` as a 2026-only server does. If
   * `server/discover` offers 2026-07-28, answer the host from it and bridge from now on;
   * otherwise the host gets the refusal.
   */
  async #bridgeInitialize(pending: Pending, refusal: HttpStatusError): Promise<Answered | unknown> {
    const { request } = pending;
    const meta = bridgeMeta(request);
    const probe = discoverRequest(`${INTERNAL_PREFIX}${++this.#nextInternalId}`, meta);
    const discovered = await this.#exchangeModern(probe, MODERN_REVISION, 0, pending.abort.signal).catch(
      () => undefined,
    );
    const bridge = discovered?.error === undefined ? bridgeFrom(discovered?.result, meta) : undefined;
    if (bridge === undefined) return refusal;
    this.#bridge = bridge;
    if (this.#init?.request === request) this.#init.done = true;
    this.#log.info('the server speaks only 2026-07-28; bridging the host to it', {
      hostVersion: String(request.params?.['protocolVersion'] ?? ''),
    });
    return new Answered(initializeResult(request, bridge, discovered?.result));
  }

  /** The listen stream that brings the server's list changes to a bridged host. */
  #startBridgeListen(): void {
    if (this.#bridge === undefined || this.#closed || this.#bridgeListen?.settled === false) return;
    const request = listenRequest(`${INTERNAL_PREFIX}listen-${++this.#nextInternalId}`, this.#bridge);
    if (request !== undefined) this.#bridgeListen = this.#startRequest(request, true);
  }

  #stopBridgeListen(): void {
    const listen = this.#bridgeListen;
    this.#bridgeListen = undefined;
    if (listen === undefined || listen.settled) return;
    listen.settled = true;
    listen.abort.abort(ANSWERED);
    this.#pending.delete(idKey(listen.request.id));
  }

  /** The GET stream for server-initiated messages, kept open with backoff. */
  #startListening(): void {
    if (this.#mode !== 'http' || this.#listening !== undefined || this.#closed) return;
    const abort = new AbortController();
    this.#listening = abort;
    const epoch = this.#epoch;
    void (async () => {
      const progress: StreamProgress = {};
      let failures = 0;
      while (!abort.signal.aborted && epoch === this.#epoch && !this.#loggedOut) {
        const opened = Date.now();
        try {
          const outcome = await this.#http.listen((m) => this.#fromServer(m), abort.signal, progress);
          if (outcome === 'unsupported') return;
          // A stream that lived a while was healthy; a server closing it at once is not.
          failures = Date.now() - opened > 10_000 ? 0 : failures + 1;
        } catch (error) {
          if (abort.signal.aborted) return;
          if (error instanceof HttpStatusError && error.sessionExpired) {
            void this.#rehandshake(epoch, 'session expired (HTTP 404)').catch((e: unknown) =>
              this.#debugFailure('re-handshake', e),
            );
            return;
          }
          // Requests will surface a credential failure to the host; an oversized event only
          // costs this stream, which is opened again below.
          if (isLatchkeyError(error) && !(error instanceof MessageTooLargeError)) return;
          if (error instanceof MessageTooLargeError) {
            this.#log.warn(`the server's listen stream was dropped: ${error.message}`);
          }
          failures++;
          if (
            (error instanceof StreamBrokenError && error.garbage) ||
            failures >= (this.#o.maxStreamFailures ?? 3)
          ) {
            void this.#rehandshake(epoch, 'the listen stream kept failing').catch((e: unknown) =>
              this.#debugFailure('re-handshake', e),
            );
            return;
          }
        }
        await sleep(backoffMs(failures, progress.retryMs), abort.signal).catch(() => undefined);
      }
    })().finally(() => {
      if (this.#listening === abort) this.#listening = undefined;
    });
  }

  #stopListening(): void {
    this.#listening?.abort();
    this.#listening = undefined;
  }

  // ---- credentials ----

  /** Apply credential events the store holds that the watch has not delivered yet. */
  async #catchUpOnEvents(): Promise<void> {
    const cursor = await this.#eventCursor;
    const events = await this.#o.manager.store.readEvents({
      server: this.server,
      afterId: this.#lastEventId ?? cursor,
    });
    for (const event of events) this.#onCredentialEvent(event);
  }

  #onCredentialEvent(event: LifecycleEvent): void {
    if (this.#lastEventId !== undefined && event.id <= this.#lastEventId) return;
    this.#lastEventId = event.id;
    const everyServer = event.type === EventType.RECONNECT && event.server === '';
    if ((event.server !== this.server && !everyServer) || this.#closed) return;
    if (event.type === EventType.REVOKED || event.type === EventType.DELETED) {
      this.#loggedOut = true;
      this.#stopListening();
      this.#stopBridgeListen();
      this.#log.warn(`logged out; requests now fail until \`latchkey login ${this.server}\``);
    } else if (event.type === EventType.ACQUIRED) {
      const wasOut = this.#loggedOut;
      this.#loggedOut = false;
      // A new login may be another account: a session opened under the old one must not go on.
      if (this.#init?.done === true) {
        this.#log.info(wasOut ? 'logged in again; resuming' : 'new login; renewing the session');
        void this.#rehandshake(this.#epoch, 'new login').catch((e: unknown) =>
          this.#debugFailure('re-handshake', e),
        );
      }
    } else if (event.type === EventType.RECONNECT) {
      void this.#rehandshake(this.#epoch, 'latchkey reconnect').catch((e: unknown) =>
        this.#debugFailure('re-handshake', e),
      );
    }
  }

  #debugFailure(what: string, error: unknown): void {
    this.#log.debug(`${what} failed`, { error: error instanceof Error ? error.message : String(error) });
  }
}

/** A 2026-07-28 subscriptions/listen: a stream of notifications, kept open until cancelled. */
function isListen(request: JsonRpcRequest, revision: string | undefined): boolean {
  return revision !== undefined && request.method === 'subscriptions/listen';
}

/** A request answered by the connection itself (a bridged `initialize`). */
class Answered {
  constructor(readonly result: object) {}
}

/** The request's answer was lost after the server got it. */
class LostInFlight extends Error {
  constructor(cause: unknown) {
    super('lost in flight', { cause });
  }
}

function backoffMs(attempt: number, serverRetryMs?: number): number {
  if (serverRetryMs !== undefined) return Math.min(serverRetryMs, 30_000);
  const base = Math.min(100 * 2 ** attempt, 5000);
  return base / 2 + Math.random() * (base / 2);
}
