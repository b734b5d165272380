/**
 * One subject's connection to one upstream MCP server, shared by every host that calls the
 * gateway for that (subject, upstream) on this instance. It is latchkey's resilient
 * McpConnection (session recovery, stream resumption, both protocol eras and the bridge)
 * with the gateway as its only host: the gateway runs the handshake once, with its own
 * client info, and multiplexes the hosts' requests over it under ids of its own, so two
 * hosts that both number their requests from 1 never meet.
 *
 * Server-to-client requests (sampling, elicitation, roots) are refused: the gateway declares
 * none of those capabilities upstream, since one shared session cannot tell which host a
 * request is for. Server notifications go to every listener (the hosts' GET streams).
 */
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import type { Logger } from '../log.js';
import { McpConnection } from '../mcp/connection.js';
import type { McpCredentials } from '../mcp/credentials.js';
import {
  errorResponse,
  isRequest,
  isResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcResponse,
} from '../mcp/jsonrpc.js';

export interface LinkOptions {
  server: string;
  subject: string;
  credentials: McpCredentials;
  logger: Logger;
  /** Under the auth layer. Default: the connection's own. */
  fetch?: typeof fetch | undefined;
  /** Deadline of each request to the upstream, in ms. Default: the connection's (5 minutes). */
  requestTimeoutMs?: number | undefined;
}

/** The gateway's own request ids; never the hosts'. */
const ID_PREFIX = 'gw-';

/** The version the gateway speaks upstream; the connection adapts to older servers and bridges to newer ones. */
const GATEWAY_INFO = { name: 'latchkey-serve', version: '1' };

/** A handshake or request the upstream refused; the host gets `error` as it is. */
export class LinkRefusal extends Error {
  constructor(readonly error: NonNullable<JsonRpcResponse['error']>) {
    super(error.message);
    this.name = 'LinkRefusal';
  }
}

export class UpstreamLink {
  /** Epoch ms of the last use, for idle eviction. */
  lastUsed = Date.now();
  /** Server notifications are handed to each (the hosts' GET streams). */
  readonly listeners = new Set<(message: JsonRpcNotification) => void>();
  readonly server: string;
  readonly #connection: McpConnection;
  readonly #waiting = new Map<string, (response: JsonRpcResponse) => void>();
  #nextId = 0;
  #handshake: Promise<Record<string, unknown>> | undefined;

  constructor(options: LinkOptions) {
    this.server = options.server;
    this.#connection = new McpConnection({
      server: options.server,
      manager: options.credentials,
      subject: options.subject,
      logger: options.logger,
      ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
      ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    });
    this.#connection.onmessage = (message) => this.#fromServer(message);
  }

  /** Requests in flight: a busy link is never evicted. */
  get busy(): boolean {
    return this.#waiting.size > 0 || this.listeners.size > 0;
  }

  /** How often the upstream session was made anew (tests and diagnostics). */
  get sessionEpoch(): number {
    return this.#connection.sessionEpoch;
  }

  /** The upstream's InitializeResult; the handshake runs once, and again after a failure. */
  initialized(): Promise<Record<string, unknown>> {
    this.#handshake ??= this.#initialize().catch((error: unknown) => {
      this.#handshake = undefined;
      throw error;
    });
    return this.#handshake;
  }

  /**
   * Send one host request (after the handshake) and resolve with the upstream's answer
   * under the host's id. `onId` learns the gateway's id, for cancellation.
   */
  async request(
    method: string,
    params: Record<string, unknown> | undefined,
    hostId: JsonRpcId,
    onId?: (gatewayId: string) => void,
  ): Promise<JsonRpcResponse> {
    this.lastUsed = Date.now();
    try {
      await this.initialized();
    } catch (error) {
      if (error instanceof LinkRefusal) return errorResponse(hostId, error.error);
      throw error;
    }
    const answer = await this.#exchange(method, params, onId);
    this.lastUsed = Date.now();
    return { ...answer, id: hostId };
  }

  /** The host gave up on a request: tell the upstream (2025-era cancellation). */
  cancel(gatewayId: string): void {
    if (!this.#waiting.has(gatewayId)) return;
    this.#connection.send({
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: gatewayId, reason: 'the host cancelled the request' },
    });
  }

  /** Fail what is pending and end the upstream session. */
  async close(): Promise<void> {
    this.listeners.clear();
    await this.#connection.close();
  }

  async #initialize(): Promise<Record<string, unknown>> {
    const answer = await this.#exchange('initialize', {
      protocolVersion: LATEST_PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: GATEWAY_INFO,
    });
    if (answer.error !== undefined) throw new LinkRefusal(answer.error);
    this.#connection.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    return (answer.result ?? {}) as Record<string, unknown>;
  }

  #exchange(
    method: string,
    params: Record<string, unknown> | undefined,
    onId?: (gatewayId: string) => void,
  ): Promise<JsonRpcResponse> {
    const id = `${ID_PREFIX}${++this.#nextId}`;
    onId?.(id);
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      // The connection answers every request, failures included, so this always settles.
      this.#connection.send({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
    });
  }

  #fromServer(message: JsonRpcMessage): void {
    if (isResponse(message)) {
      const key = String(message.id);
      const resolve = this.#waiting.get(key);
      this.#waiting.delete(key);
      resolve?.(message);
      return;
    }
    if (isRequest(message)) {
      this.#connection.send(
        errorResponse(message.id, {
          code: -32601,
          message: 'latchkey serve does not relay server-to-client requests to its hosts.',
        }),
      );
      return;
    }
    for (const listener of this.listeners) listener(message);
  }
}
