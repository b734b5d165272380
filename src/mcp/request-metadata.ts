/**
 * "Request Metadata" of the 2026-07-28 Streamable HTTP transport (SEP-2243): every POST
 * mirrors parts of its JSON-RPC body into headers, so that gateways can route without
 * parsing bodies, and the server refuses a request whose headers and body disagree
 * (`-32020 HeaderMismatch`):
 *
 * - `MCP-Protocol-Version`: the body's `_meta["io.modelcontextprotocol/protocolVersion"]`;
 * - `Mcp-Method`: the method, on every request;
 * - `Mcp-Name`: `params.name` of tools/call and prompts/get, `params.uri` of resources/read;
 * - `Mcp-Param-{Name}`: tool arguments the tool's schema marks with `x-mcp-header`
 *   (see tool-headers.ts).
 *
 * Values that are not plain visible ASCII go as `=?base64?…?=` (the spec's "Value Encoding").
 *
 * A request is "modern" when its `_meta` carries a protocol version: 2026-07-28 moved the
 * version, client info and capabilities from the `initialize` handshake into every request.
 * The host decides the revision; latchkey follows what each request says.
 */
import type { JsonRpcRequest } from './jsonrpc.js';
import type { ToolHeaders } from './tool-headers.js';

export const PROTOCOL_VERSION_META = 'io.modelcontextprotocol/protocolVersion';

/** JSON-RPC codes of the 2026-07-28 wire that latchkey reacts to. */
export const ModernErrorCode = {
  HEADER_MISMATCH: -32020,
} as const;

const NAMED_BY = new Map([
  ['tools/call', 'name'],
  ['prompts/get', 'name'],
  ['resources/read', 'uri'],
]);

/** The protocol version a modern request carries in `_meta`, or undefined (2025-era). */
export function modernRevision(request: JsonRpcRequest): string | undefined {
  const meta = request.params?.['_meta'];
  if (typeof meta !== 'object' || meta === null) return undefined;
  const version = (meta as Record<string, unknown>)[PROTOCOL_VERSION_META];
  return typeof version === 'string' && version !== '' ? version : undefined;
}

/** The headers a modern request must carry; `tools` supplies the `x-mcp-header` mirrors. */
export function requestMetadataHeaders(
  request: JsonRpcRequest,
  revision: string,
  tools: ToolHeaders,
): Record<string, string> {
  const headers: Record<string, string> = {
    'mcp-protocol-version': encodeHeaderValue(revision),
    'mcp-method': encodeHeaderValue(request.method),
  };
  const field = NAMED_BY.get(request.method);
  const name = field === undefined ? undefined : request.params?.[field];
  if (typeof name === 'string') headers['mcp-name'] = encodeHeaderValue(name);
  if (request.method === 'tools/call' && typeof name === 'string') {
    const args = request.params?.['arguments'];
    for (const [header, value] of tools.mirror(name, args)) {
      headers[`mcp-param-${header.toLowerCase()}`] = encodeHeaderValue(value);
    }
  }
  return headers;
}

/**
 * Visible ASCII with inner spaces goes as it is. Tabs are legal in RFC 9110 field values, but
 * the spec's Value Encoding sends every control character as Base64.
 */
const PLAIN = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;
const SENTINEL = /^=\?base64\?.*\?=$/;

/** A header value as the spec's Value Encoding wants it. */
export function encodeHeaderValue(value: string): string {
  if (PLAIN.test(value) && !SENTINEL.test(value)) return value;
  return `=?base64?${Buffer.from(value, 'utf8').toString('base64')}?=`;
}
