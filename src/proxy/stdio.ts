/**
 * The host side of `latchkey proxy`: newline-delimited JSON-RPC on stdin and stdout (the MCP
 * stdio transport), relayed to one McpConnection. stdout carries MCP messages and nothing
 * else; every human-facing line goes to stderr through the logger.
 *
 * The framing is done here rather than with the SDK's StdioServerTransport: a relay passes
 * each message through as it is, so it has no use for the SDK's per-message schema check,
 * and loading the SDK's schemas cost about 80 ms at every spawn by a host (a third of the
 * proxy's warm start).
 *
 * Backpressure: while stdout's buffer is over its high-water mark (a host that is not
 * reading), the connection reads nothing more from the server (McpConnection.outputReady),
 * so what the proxy holds stays bounded by one message plus the buffer whatever the server
 * sends.
 */
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

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
  connection.onmessage = (message) => {
    // A host that has gone away makes writes fail; the relay is ending anyway.
    if (!stdout.writable) return;
    stdout.write(JSON.stringify(message) + '\n', (error) => {
      if (error != null) logger.warn(`could not write to the host: ${error.message}`);
    });
  };
  connection.outputReady = hostReady(stdout);
  const lines = createInterface({ input: stdin, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    const message = parseMessage(line);
    if (message === undefined) logger.warn('unreadable message from the host (not a JSON-RPC object)');
    else connection.send(message);
  });
  await new Promise<void>((resolve) => {
    const done = (): void => resolve();
    lines.once('close', done);
    stdin.once('end', done);
    stdin.once('close', done);
    if (options.signal?.aborted === true) done();
    options.signal?.addEventListener('abort', done, { once: true });
  });
  connection.onmessage = undefined;
  connection.outputReady = undefined;
  lines.close();
  await connection.close();
}

/**
 * undefined while `stdout` takes writes; otherwise one shared promise that settles when it
 * drains, or when it closes or fails (the relay is ending then and must not hang on it).
 */
function hostReady(stdout: Writable): () => Promise<void> | undefined {
  let waiting: Promise<void> | undefined;
  return () => {
    if (!stdout.writableNeedDrain || stdout.destroyed) return undefined;
    waiting ??= new Promise<void>((resolve) => {
      const done = (): void => {
        stdout.off('drain', done);
        stdout.off('close', done);
        stdout.off('error', done);
        waiting = undefined;
        resolve();
      };
      stdout.on('drain', done);
      stdout.on('close', done);
      stdout.on('error', done);
    });
    return waiting;
  };
}

function parseMessage(line: string): JsonRpcMessage | undefined {
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    return (value as { jsonrpc?: unknown }).jsonrpc === '2.0' ? (value as JsonRpcMessage) : undefined;
  } catch {
    return undefined;
  }
}
