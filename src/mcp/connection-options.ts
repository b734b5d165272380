/** The options of an McpConnection, and what its parts share. */
import type { LatchkeyError } from '../errors.js';
import type { Logger } from '../log.js';
import type { NextAction } from '../next-action.js';
import type { McpCredentials } from './credentials.js';

export type TransportStrategy = 'auto' | 'streamable-http' | 'sse';

/**
 * Called when a request needs a login. Resolves once a credential exists; rejects with a
 * JSON-RPC error for the host (for example device-flow instructions) or a LatchkeyError.
 */
export type Authorizer = (error: LatchkeyError, signal: AbortSignal) => Promise<void>;

export interface ConnectionOptions {
  /** The MCP server URL. */
  server: string | URL;
  /** Where tokens and credential events come from: a CredentialManager, or anything shaped like one. */
  manager: McpCredentials;
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
  /** The fetch under the auth layer. Default: Node's fetch, or see `httpClient`. */
  fetch?: typeof fetch;
  /**
   * Without `fetch`: `node` (default) sends on latchkey's node:http client (http-client.ts),
   * which costs less per request and loads faster; `fetch` on Node's fetch (undici).
   */
  httpClient?: 'fetch' | 'node';
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
   * neutral words; the proxy passes the CLI's renderer.
   */
  describeNext?: (action: NextAction) => string;
}

/** latchkey's own requests carry ids with this prefix; their answers never reach the host. */
export const INTERNAL_PREFIX = 'latchkey-';

/** Defaults of the options above. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_STREAM_FAILURES = 3;
