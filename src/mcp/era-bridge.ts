/**
 * A 2025-era host (one that starts with `initialize`, as every MCP SDK 1.x client does) in
 * front of a server that speaks only 2026-07-28, which has no `initialize` and no sessions.
 * mcp-remote offers this as `--protocol`; latchkey does it when the server refuses the
 * host's `initialize` the way a 2026-only server does (400 with a 2026-era JSON-RPC error)
 * and then answers `server/discover` with 2026-07-28 among its versions:
 *
 * - the host's `initialize` is answered from `server/discover`: its capabilities, server info
 *   and instructions, under the protocol version the host asked for;
 * - every later request carries the host's client info and capabilities in `_meta`, and goes
 *   as a 2026-07-28 request (request-metadata headers, `x-mcp-header`, re-issue on a broken
 *   stream);
 * - the host's notifications stay in the proxy (the revision has none over HTTP; a cancel is
 *   the closing of the request's stream);
 * - list changes reach the host through a `subscriptions/listen` the connection keeps open
 *   for the list-changed capabilities the server declared.
 *
 * Not bridged: resource subscriptions and multi-round-trip results (SEP-2322), which a
 * 2025-era host cannot answer.
 */
import type { JsonRpcError, JsonRpcRequest } from './jsonrpc.js';
import { PROTOCOL_VERSION_META } from './request-metadata.js';

export const MODERN_REVISION = '2026-07-28';

/** The 2026-07-28 codes a server answers a 2025-era `initialize` with. */
const MODERN_REFUSALS = new Set([
  -32020, // HeaderMismatch: no MCP-Protocol-Version header, or none matching `_meta`
  -32022, // UnsupportedProtocolVersion
  -32602, // Invalid params: `_meta` lacks the protocol version or client capabilities
]);

const CLIENT_INFO_META = 'io.modelcontextprotocol/clientInfo';
const CLIENT_CAPABILITIES_META = 'io.modelcontextprotocol/clientCapabilities';
const SERVER_INFO_META = 'io.modelcontextprotocol/serverInfo';

export interface Bridge {
  readonly revision: string;
  /** What every bridged request carries in `_meta`. */
  readonly meta: Readonly<Record<string, unknown>>;
  /** The capabilities `server/discover` declared. */
  readonly capabilities: Readonly<Record<string, unknown>>;
}

/** Did the server refuse a 2025-era `initialize` as a 2026-only server would? */
export function isModernRefusal(status: number, rpc: JsonRpcError | undefined): boolean {
  return status === 400 && rpc !== undefined && MODERN_REFUSALS.has(rpc.code);
}

/** The `_meta` of bridged requests, from the host's `initialize` params. */
export function bridgeMeta(initialize: JsonRpcRequest): Record<string, unknown> {
  const params = initialize.params ?? {};
  return {
    [PROTOCOL_VERSION_META]: MODERN_REVISION,
    [CLIENT_CAPABILITIES_META]: params['capabilities'] ?? {},
    ...(params['clientInfo'] === undefined ? {} : { [CLIENT_INFO_META]: params['clientInfo'] }),
  };
}

export function discoverRequest(id: string, meta: Record<string, unknown>): JsonRpcRequest {
  return { jsonrpc: '2.0', id, method: 'server/discover', params: { _meta: meta } };
}

/** The bridge a `server/discover` result allows, or undefined if it lacks 2026-07-28. */
export function bridgeFrom(result: unknown, meta: Record<string, unknown>): Bridge | undefined {
  const discovered = (result ?? {}) as { supportedVersions?: unknown; capabilities?: unknown };
  const versions = Array.isArray(discovered.supportedVersions) ? discovered.supportedVersions : [];
  if (!versions.includes(MODERN_REVISION)) return undefined;
  const capabilities = isRecord(discovered.capabilities) ? discovered.capabilities : {};
  return { revision: MODERN_REVISION, meta, capabilities };
}

/** The `initialize` result the host gets, from `server/discover`. */
export function initializeResult(initialize: JsonRpcRequest, bridge: Bridge, discovered: unknown): object {
  const result = (discovered ?? {}) as Record<string, unknown>;
  const meta = isRecord(result['_meta']) ? result['_meta'] : {};
  const serverInfo = meta[SERVER_INFO_META] ?? result['serverInfo'] ?? { name: 'unknown', version: '0' };
  const requested = initialize.params?.['protocolVersion'];
  return {
    protocolVersion: typeof requested === 'string' ? requested : '2025-11-25',
    capabilities: bridge.capabilities,
    serverInfo,
    ...(typeof result['instructions'] === 'string' ? { instructions: result['instructions'] } : {}),
  };
}

/** A host request as a bridged 2026-07-28 request; the host's own `_meta` keys win. */
export function bridged(request: JsonRpcRequest, bridge: Bridge): JsonRpcRequest {
  const params = request.params ?? {};
  const own = isRecord(params['_meta']) ? params['_meta'] : {};
  return { ...request, params: { ...params, _meta: { ...bridge.meta, ...own } } };
}

/** The listen request that carries the list changes the server declared, if it declared any. */
export function listenRequest(id: string, bridge: Bridge): JsonRpcRequest | undefined {
  const notifications: Record<string, boolean> = {};
  for (const [capability, flag] of [
    ['tools', 'toolsListChanged'],
    ['prompts', 'promptsListChanged'],
    ['resources', 'resourcesListChanged'],
  ] as const) {
    const declared = bridge.capabilities[capability];
    if (isRecord(declared) && declared['listChanged'] === true) notifications[flag] = true;
  }
  if (Object.keys(notifications).length === 0) return undefined;
  return {
    jsonrpc: '2.0',
    id,
    method: 'subscriptions/listen',
    params: { _meta: bridge.meta, notifications },
  };
}

/** Notifications a 2025-era host has no use for. */
export function hiddenFromBridgedHost(method: string): boolean {
  return method === 'notifications/subscriptions/acknowledged';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
