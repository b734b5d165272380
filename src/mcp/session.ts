/**
 * The 2025-era session: the host's cached handshake and what was subscribed under it, so that
 * a lost session can be made anew without the host seeing it. A 404 on a request carrying
 * the session id means the server forgot it; the re-handshake re-sends the host's
 * `initialize` and `notifications/initialized`, re-subscribes, and the request goes again.
 */
import type { Logger } from '../log.js';
import { INTERNAL_PREFIX } from './connection-options.js';
import type { JsonRpcNotification, JsonRpcRequest } from './jsonrpc.js';
import { SESSION_EXPIRED } from './recovery.js';
import type { Wires } from './wires.js';

export interface SessionHooks {
  /** Stop what ran on the old session. True when a bridge renewed itself instead. */
  dropped(): boolean;
  /** The new session is up: start what runs on it (the listen loop). */
  renewed(): void;
  closed(): boolean;
}

interface CachedHandshake {
  request: JsonRpcRequest;
  initialized?: JsonRpcNotification;
  done: boolean;
}

export class Session {
  /** How many times the session was re-established. */
  epoch = 0;
  #init: CachedHandshake | undefined;
  #handshake: Promise<void> | undefined;
  #nextId = 0;
  readonly #subscriptions = new Set<string>();
  readonly #wires: Wires;
  readonly #log: Logger;
  readonly #hooks: SessionHooks;

  constructor(wires: Wires, log: Logger, hooks: SessionHooks) {
    this.#wires = wires;
    this.#log = log;
    this.#hooks = hooks;
  }

  /** Has the host's handshake completed (so a lost session can be rebuilt from it)? */
  get initialized(): boolean {
    return this.#init?.done === true;
  }

  /** Has a host handshake started at all? */
  get started(): boolean {
    return this.#init !== undefined;
  }

  /** A host (re)starting the handshake starts a new session. */
  begin(initialize: JsonRpcRequest): void {
    this.#init = { request: initialize, done: false };
    this.#subscriptions.clear();
    this.#wires.http.sessionId = undefined;
  }

  /** The host's own answer to `initialize` came (or a bridge answered it). */
  completed(initialize: JsonRpcRequest, result: Record<string, unknown> | undefined): void {
    if (this.#init?.request !== initialize) return;
    this.#init.done = true;
    const version = result?.['protocolVersion'];
    if (typeof version === 'string') this.#wires.http.protocolVersion = version;
  }

  noteInitialized(notification: JsonRpcNotification): void {
    if (this.#init !== undefined) this.#init.initialized = notification;
  }

  /** Subscriptions the server acknowledged, to renew with the session. */
  observe(request: JsonRpcRequest): void {
    const uri = request.params?.['uri'];
    if (typeof uri !== 'string') return;
    if (request.method === 'resources/subscribe') this.#subscriptions.add(uri);
    if (request.method === 'resources/unsubscribe') this.#subscriptions.delete(uri);
  }

  /** Wait out a re-handshake in progress. */
  async settled(): Promise<number> {
    while (this.#handshake !== undefined) await this.#handshake.catch(() => undefined);
    return this.epoch;
  }

  /**
   * Drop the session and build a new one from the host's cached handshake. Single-flight:
   * callers that saw the same failed session share one re-handshake.
   */
  rehandshake(epoch: number, reason: string): Promise<void> {
    if (this.#handshake !== undefined) return this.#handshake;
    if (epoch !== this.epoch || this.#hooks.closed()) return Promise.resolve();
    this.epoch++;
    this.#handshake = this.#renew(reason).finally(() => {
      this.#handshake = undefined;
    });
    return this.#handshake;
  }

  async #renew(reason: string): Promise<void> {
    if (this.#hooks.dropped()) return;
    // A server that forgot the session needs no DELETE for it.
    this.#wires.dropSession(reason !== SESSION_EXPIRED);
    const init = this.#init;
    if (init === undefined || !init.done) return;
    const started = Date.now();
    const result = (await this.#internal('initialize', init.request.params)) as
      Record<string, unknown> | undefined;
    const version = result?.['protocolVersion'];
    if (typeof version === 'string') this.#wires.http.protocolVersion = version;
    if (init.initialized !== undefined) await this.#wires.post(init.initialized);
    for (const uri of this.#subscriptions) await this.#internal('resources/subscribe', { uri });
    this.#log.info('session re-established', { reason, ms: Date.now() - started });
    this.#hooks.renewed();
  }

  /** An internal request (re-handshake, re-subscribe): answered here, never seen by the host. */
  async #internal(method: string, params: Record<string, unknown> | undefined): Promise<unknown> {
    const request: JsonRpcRequest = {
      jsonrpc: '2.0',
      id: `${INTERNAL_PREFIX}s${++this.#nextId}`,
      method,
      ...(params === undefined ? {} : { params }),
    };
    const response = await this.#wires.exchange(request, this.#wires.connectSignal());
    if (response.error !== undefined) {
      throw new Error(`${method} was refused: ${response.error.message}`);
    }
    return response.result;
  }
}
