/**
 * The MCP SDK's `Transport` over an McpConnection, so that an SDK `Client` gets what the
 * proxy gets: session recovery, stream resumption, credential changes from other processes,
 * and the 2026-07-28 wire and bridge. The connection never throws on `send`: failures come
 * back as JSON-RPC errors (with `data.latchkey`), which the SDK raises as `McpError`.
 */
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

import type { McpConnection } from './connection.js';
import type { JsonRpcMessage } from './jsonrpc.js';

export class McpConnectionTransport implements Transport {
  onmessage?: (message: JSONRPCMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  #closed = false;

  constructor(readonly connection: McpConnection) {}

  async start(): Promise<void> {
    this.connection.onmessage = (message) => this.onmessage?.(message as JSONRPCMessage);
  }

  async send(message: JSONRPCMessage): Promise<void> {
    this.connection.send(message as JsonRpcMessage);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.connection.close();
    this.onclose?.();
  }
}
