/**
 * The host side of `latchkey proxy`: newline-delimited JSON-RPC on stdin and stdout (the MCP
 * stdio transport, via the SDK), relayed to one McpConnection. stdout carries MCP messages and
 * nothing else; every human-facing line goes to stderr through the logger.
 */
import type { Readable, Writable } from 'node:stream';

import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

import type { Logger } from '../log.js';
import type { McpConnection } from '../mcp/connection.js';
import type { JsonRpcMessage } from '../mcp/jsonrpc.js';

export interface StdioRelayOptions {
  connection: McpConnection;
  logger: Logger;
  stdin?: Readable;
  stdout?: Writable;
  /** Ends the relay (SIGTERM, SIGINT). */
  signal?: AbortSignal;
}

/** Relay until the host closes stdin or `signal` fires, then close the connection. */
export async function runStdioRelay(options: StdioRelayOptions): Promise<void> {
  const stdin = options.stdin ?? process.stdin;
  const stdout = options.stdout ?? process.stdout;
  const { connection, logger } = options;
  const transport = new StdioServerTransport(stdin, stdout);
  transport.onmessage = (message) => connection.send(message as JsonRpcMessage);
  transport.onerror = (error) => logger.warn(`unreadable message from the host: ${error.message}`);
  connection.onmessage = (message) => {
    transport.send(message as JSONRPCMessage).catch((error: unknown) => {
      logger.warn(`could not write to the host: ${error instanceof Error ? error.message : String(error)}`);
    });
  };
  await transport.start();
  await new Promise<void>((resolve) => {
    const done = (): void => resolve();
    stdin.once('end', done);
    stdin.once('close', done);
    transport.onclose = done;
    if (options.signal?.aborted === true) done();
    options.signal?.addEventListener('abort', done, { once: true });
  });
  connection.onmessage = undefined;
  await transport.close().catch(() => undefined);
  await connection.close();
}
