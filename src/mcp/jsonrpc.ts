/**
 * JSON-RPC 2.0 as MCP uses it. The connection relays messages it mostly does not interpret,
 * so these are shape checks, not schema validation: the host and the server each validate
 * what they receive against their own protocol revision.
 */

export type JsonRpcId = string | number;

export interface JsonRpcRequest {
  jsonrpc: '2.0';
  id: JsonRpcId;
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcError {
  code: number;
  message: string;
  data?: unknown;
}

export interface JsonRpcResponse {
  jsonrpc: '2.0';
  id: JsonRpcId | null;
  result?: unknown;
  error?: JsonRpcError;
}

export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

/**
 * Error codes latchkey answers the host with. The first two equal the MCP SDK's own (a unit
 * test checks; not imported, to keep the SDK's schemas out of the proxy's start), so hosts
 * already treat them as transport trouble; the rest sit in JSON-RPC's implementation range.
 */
export const RpcErrorCode = {
  /** The connection broke while the request was in flight, and it was not safe to resend. */
  CONNECTION_CLOSED: -32000,
  /** No answer within the request timeout. */
  REQUEST_TIMEOUT: -32001,
  /** The user must log in (or finish a device login) before the server can be reached. */
  AUTH_REQUIRED: -32040,
  /** The server or the authorization server could not be reached; retrying later may help. */
  UNAVAILABLE: -32041,
  /**
   * The server's answer was larger than the proxy's message size limit and was dropped. Not
   * -32042: MCP 2025-11-25 gave that code to URL elicitation, and a host would show a link.
   */
  MESSAGE_TOO_LARGE: -32043,
} as const;

export function isRequest(message: JsonRpcMessage): message is JsonRpcRequest {
  return 'method' in message && 'id' in message && message.id !== undefined;
}

export function isNotification(message: JsonRpcMessage): message is JsonRpcNotification {
  return 'method' in message && !('id' in message && message.id !== undefined);
}

export function isResponse(message: JsonRpcMessage): message is JsonRpcResponse {
  return !('method' in message) && ('result' in message || 'error' in message);
}

/** A message object, or undefined when `value` is not shaped like JSON-RPC 2.0. */
export function asMessage(value: unknown): JsonRpcMessage | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  if (record['jsonrpc'] !== '2.0') return undefined;
  if (typeof record['method'] === 'string') return record as unknown as JsonRpcMessage;
  if ('result' in record || 'error' in record) return record as unknown as JsonRpcMessage;
  return undefined;
}

/** Parse one JSON text into messages (a batch gives several). Throws on anything else. */
export function parseMessages(text: string): JsonRpcMessage[] {
  const value: unknown = JSON.parse(text);
  const items = Array.isArray(value) ? value : [value];
  return items.map((item) => {
    const message = asMessage(item);
    if (message === undefined) throw new SyntaxError('not a JSON-RPC 2.0 message');
    return message;
  });
}

export function errorResponse(id: JsonRpcId, error: JsonRpcError): JsonRpcResponse {
  return { jsonrpc: '2.0', id, error };
}

/** A stable string form of an id, so 1 and "1" stay distinct map keys. */
export function idKey(id: JsonRpcId | null): string {
  return typeof id === 'number' ? `n:${id}` : `s:${String(id)}`;
}
