/**
 * What can go wrong on the wire, sorted by what the connection may do about it. The split
 * that matters is "the server never processed this" (safe to resend) versus "the server may
 * have processed this" (resend only what is safe to run twice).
 */
import { networkJson, networkText } from '../network-text.js';
import type { JsonRpcError } from './jsonrpc.js';

/** The server answered with a non-2xx status. */
export class HttpStatusError extends Error {
  override readonly name = 'HttpStatusError';
  /** The JSON-RPC error the body carried, if it was one (2026-07-28 servers send them). */
  readonly rpcError: JsonRpcError | undefined;
  constructor(
    readonly status: number,
    /** The request carried a session id and the server no longer knows it (404). */
    readonly sessionExpired: boolean,
    /** From Retry-After, when the server sent one. */
    readonly retryAfterMs: number | undefined,
    detail: string,
    rpcError?: JsonRpcError,
  ) {
    // The body is the server's words: made safe here, once, for every path that shows it.
    const text = networkText(detail).trim();
    super(`HTTP ${status}${text === '' ? '' : `: ${text}`}`);
    this.rpcError = rpcError === undefined ? undefined : networkRpcError(rpcError);
  }
}

/**
 * A response stream ended or broke before every expected response arrived. The request was
 * delivered, so the server may have acted on it.
 */
export class StreamBrokenError extends Error {
  override readonly name = 'StreamBrokenError';
  constructor(
    message: string,
    /** The last SSE event id seen, for resuming with Last-Event-ID. */
    readonly lastEventId: string | undefined,
    /** The server's `retry:` hint. */
    readonly retryMs: number | undefined,
    /** The stream carried something that is not SSE-framed JSON-RPC. */
    readonly garbage: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** No TCP connection could be made: the request never reached the server. */
export function isConnectRefused(error: unknown): boolean {
  const code = errorCode(error) ?? errorCode((error as { cause?: unknown } | undefined)?.cause);
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND';
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date), capped at a minute. */
export function retryAfterMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 60_000) : undefined;
}

/** A JSON-RPC error a server sent in an error body, before it is relayed to the host. */
function networkRpcError(error: JsonRpcError): JsonRpcError {
  const safe: JsonRpcError = { code: error.code, message: networkText(error.message) };
  if ('data' in error) safe.data = networkJson(error.data);
  return safe;
}
