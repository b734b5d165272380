/**
 * A 2025-era host in front of a server that speaks only 2026-07-28: its `initialize` is
 * answered from `server/discover`, its requests go sessionless, and a subscriptions/listen
 * stream brings it the list changes a session's GET stream would have (era-bridge.ts has
 * the translation).
 */
import type { Logger } from '../log.js';
import {
  type Bridge,
  bridged,
  bridgeFrom,
  bridgeMeta,
  discoverRequest,
  hiddenFromBridgedHost,
  initializeResult,
  listenRequest,
  MODERN_REVISION,
} from './era-bridge.js';
import type { JsonRpcMessage, JsonRpcRequest } from './jsonrpc.js';
import type { Pending, PendingTable } from './pending.js';
import { modernRevision } from './request-metadata.js';
import type { Sessionless } from './sessionless.js';

export interface BridgingOptions {
  sessionless: Sessionless;
  pending: PendingTable;
  /** Run one of latchkey's own requests like a host request (retries included). */
  startInternal(request: JsonRpcRequest): Pending;
  log: Logger;
  closed(): boolean;
}

export class Bridging {
  readonly #o: BridgingOptions;
  #bridge: Bridge | undefined;
  #listen: Pending | undefined;

  constructor(options: BridgingOptions) {
    this.#o = options;
  }

  get active(): boolean {
    return this.#bridge !== undefined;
  }

  /** The host starts a handshake: the era is found anew. */
  reset(): void {
    this.#bridge = undefined;
    this.stopListen();
  }

  /** A bridged host's 2025-era request, in 2026-07-28 form. */
  translate(request: JsonRpcRequest): JsonRpcRequest {
    if (this.#bridge === undefined || modernRevision(request) !== undefined) return request;
    return bridged(request, this.#bridge);
  }

  /** Server messages a bridged host must not see (they belong to the 2026-07-28 wire). */
  hides(message: JsonRpcMessage): boolean {
    return this.#bridge !== undefined && 'method' in message && hiddenFromBridgedHost(message.method);
  }

  /**
   * The server refused the host's 2025-era `initialize` as a 2026-only server does. If
   * `server/discover` offers 2026-07-28, the result to answer the host with, and the bridge
   * is on from now; otherwise undefined, and the host gets the refusal.
   */
  async initialize(pending: Pending): Promise<object | undefined> {
    const { request } = pending;
    const meta = bridgeMeta(request);
    const probe = discoverRequest(this.#o.sessionless.nextId(), meta);
    const discovered = await this.#o.sessionless
      .exchange(probe, MODERN_REVISION, 0, pending.abort.signal)
      .catch(() => undefined);
    const bridge = discovered?.error === undefined ? bridgeFrom(discovered?.result, meta) : undefined;
    if (bridge === undefined) return undefined;
    this.#bridge = bridge;
    this.#o.log.info('the server speaks only 2026-07-28; bridging the host to it', {
      hostVersion: String(request.params?.['protocolVersion'] ?? ''),
    });
    return initializeResult(request, bridge, discovered?.result);
  }

  /** The listen stream that brings the server's list changes to a bridged host. */
  startListen(): void {
    if (this.#bridge === undefined || this.#o.closed() || this.#listen?.settled === false) return;
    const request = listenRequest(this.#o.sessionless.nextId('listen-'), this.#bridge);
    if (request !== undefined) this.#listen = this.#o.startInternal(request);
  }

  stopListen(): void {
    const listen = this.#listen;
    this.#listen = undefined;
    if (listen !== undefined) this.#o.pending.settle(listen);
  }

  /** A session renewal, bridged: no session to renew, the listen stream is opened again. */
  renew(): boolean {
    if (this.#bridge === undefined) return false;
    this.stopListen();
    this.startListen();
    return true;
  }
}
