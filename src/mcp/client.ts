/**
 * A one-shot authenticated MCP client: the SDK's `Client` over its own HTTP transports, with
 * latchkey's auth fetch underneath. For short-lived work (the `tools` and `call` commands, a
 * script); long-lived hosts want `McpConnection`, which also survives session loss.
 *
 * `auto` tries Streamable HTTP and falls back to the legacy HTTP+SSE transport when the
 * server answers the initialize POST with 400, 404 or 405, as the spec's backwards
 * compatibility section describes. Before that, a 400 may come from a server that speaks
 * only 2026-07-28: the client is then bridged to it through an McpConnection.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';

import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import type { NextAction } from '../next-action.js';
import { createAuthFetch } from './auth-fetch.js';
import { McpConnection, type TransportStrategy } from './connection.js';
import { McpConnectionTransport } from './connection-transport.js';
import { streamCappedFetch } from '../oauth/bounded-fetch.js';
import type { McpCredentials } from './credentials.js';
import { type LatchkeyErrorData, serverFailureAction, serverFailureNote } from './rpc-errors.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from './sse.js';

export interface McpClientOptions {
  /** Where tokens come from: a CredentialManager, or anything shaped like one. */
  manager: McpCredentials;
  /** Default `auto`. */
  transport?: TransportStrategy;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** May a 401 start a login? Default false: one-shot commands tell the user to log in. */
  interactive?: boolean;
  /** Deadline for each request, ms. Default 60 s. */
  requestTimeoutMs?: number;
  /** Name and version the client announces. */
  clientInfo?: { name: string; version: string };
}

const FALLBACK_STATUSES = new Set([400, 404, 405]);

/**
 * Connect (initialize) to `server`. A credential problem surfaces as the manager's typed
 * error (LOGIN_REQUIRED with the login command), not as the transport's generic 401.
 */
export async function connectMcpClient(server: string, options: McpClientOptions): Promise<Client> {
  const strategy = options.transport ?? 'auto';
  // The SDK transports wrap what fetch throws; keep the manager's own error to rethrow it.
  let authError: LatchkeyError | undefined;
  // One answer may not exceed the proxy's message limit: the SDK would buffer any size.
  const authFetch = streamCappedFetch(
    createAuthFetch(server, { manager: options.manager, interactive: options.interactive ?? false }),
    { limit: DEFAULT_MAX_MESSAGE_BYTES, what: 'MCP server response', server },
  );
  const fetchRemembering: typeof fetch = async (input, init) => {
    try {
      return await authFetch(input, init);
    } catch (error) {
      if (isLatchkeyError(error)) authError = error;
      throw error;
    }
  };
  const requestInit: RequestInit = { headers: options.headers ?? {} };
  const clientInfo = options.clientInfo ?? { name: 'latchkey', version: '0' };
  const attempt = async (kind: 'streamable-http' | 'sse'): Promise<Client> => {
    const client = new Client(clientInfo);
    const url = new URL(server);
    const transport =
      kind === 'sse'
        ? new SSEClientTransport(url, {
            fetch: fetchRemembering,
            requestInit,
            eventSourceInit: { fetch: fetchRemembering },
          })
        : new StreamableHTTPClientTransport(url, { fetch: fetchRemembering, requestInit });
    try {
      await client.connect(transport, { timeout: options.requestTimeoutMs ?? 60_000 });
      return client;
    } catch (error) {
      await client.close().catch(() => undefined);
      throw authError ?? error;
    }
  };
  try {
    if (strategy === 'sse') return await attempt('sse');
    try {
      return await attempt('streamable-http');
    } catch (error) {
      if (isStatus(error, 400)) {
        const bridged = await attemptBridge(server, options, fetchRemembering, clientInfo);
        if (bridged !== undefined) return bridged;
      }
      if (strategy === 'streamable-http' || !shouldFallBack(error)) throw error;
      return await attempt('sse');
    }
  } catch (error) {
    throw asLatchkeyError(server, error);
  }
}

/** Through an McpConnection, kept only if it found a 2026-only server and bridged to it. */
async function attemptBridge(
  server: string,
  options: McpClientOptions,
  fetch: typeof globalThis.fetch,
  clientInfo: { name: string; version: string },
): Promise<Client | undefined> {
  const connection = new McpConnection({
    server,
    manager: options.manager,
    transport: 'streamable-http',
    headers: options.headers ?? {},
    authenticate: false,
    fetch,
    requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
  });
  const client = new Client(clientInfo);
  const connected = await client
    .connect(new McpConnectionTransport(connection), { timeout: options.requestTimeoutMs ?? 60_000 })
    .then(
      () => connection.bridged,
      () => false,
    );
  if (connected) return client;
  await client.close().catch(() => undefined);
  return undefined;
}

function isStatus(error: unknown, status: number): boolean {
  return error instanceof StreamableHTTPError && error.code === status;
}

function shouldFallBack(error: unknown): boolean {
  return (
    error instanceof StreamableHTTPError && error.code !== undefined && FALLBACK_STATUSES.has(error.code)
  );
}

/** Anything else (refused connection, HTTP error, timeout) as one error naming the server. */
export function asLatchkeyError(server: string, error: unknown): LatchkeyError {
  if (isLatchkeyError(error)) return error;
  const relayed = fromConnectionError(error);
  if (relayed !== undefined) return relayed;
  const code = error instanceof StreamableHTTPError || error instanceof SseError ? error.code : undefined;
  const status = code === undefined ? '' : ` (HTTP ${code})`;
  const reason = describe(error);
  if (code !== undefined && code >= 500) {
    return new LatchkeyError(
      ErrorCode.MCP_FAILED,
      `the MCP server failed${status}: ${reason}. ${serverFailureNote(code)}`,
      { server, retryable: true, next: serverFailureAction(server), cause: error },
    );
  }
  return new LatchkeyError(ErrorCode.MCP_FAILED, `the MCP server failed${status}: ${reason}`, {
    server,
    retryable: true,
    next: { kind: 'diagnose', server },
    cause: error,
  });
}

/**
 * An error an McpConnection answered with (a bridged client): its `data.latchkey` holds
 * latchkey's code, and its message already names the server and the next step.
 */
function fromConnectionError(error: unknown): LatchkeyError | undefined {
  if (!(error instanceof McpError)) return undefined;
  const data = (error.data as { latchkey?: Partial<LatchkeyErrorData> } | undefined)?.latchkey;
  if (typeof data?.code !== 'string' || typeof data.server !== 'string') return undefined;
  const code = (Object.values(ErrorCode) as string[]).includes(data.code)
    ? (data.code as ErrorCode)
    : ErrorCode.MCP_FAILED;
  let message = error.message.replace(/^MCP error -?\d+: /, '').replace(/^latchkey: /, '');
  const next = data.next as NextAction | undefined;
  // The next step travels as data; each face words it again, so the words leave the message.
  const words = ` Next step: ${data.nextStep ?? ''}`;
  if (next !== undefined && message.endsWith(words)) message = message.slice(0, -words.length);
  return new LatchkeyError(code, message, {
    retryable: data.retryable === true,
    ...(next === undefined ? {} : { next }),
    cause: error,
  });
}

/** The message, with the network code underneath when fetch only says "fetch failed". */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: unknown } | undefined;
  return typeof cause?.code === 'string' ? `${error.message} (${cause.code})` : error.message;
}
