/**
 * The host side of the 2026-07-28 stateless wire (SEP-2575), for the conformance client:
 * `@modelcontextprotocol/sdk` 1.32 speaks 2025-11-25 at most. Each request carries its
 * protocol version, client capabilities and client info in `_meta`, and goes through
 * latchkey's McpConnection, which adds the request-metadata headers (`MCP-Protocol-Version`,
 * `Mcp-Method`, `Mcp-Name`), mirrors `x-mcp-header` parameters into `Mcp-Param-*` and drops
 * tools with invalid annotations from tools/list (SEP-2243), as it does for a proxy host.
 *
 * A version the server refuses (-32022) is retried once with one it lists: era negotiation is
 * the host's part. No server-to-client requests or multi-round-trip results (SEP-2322).
 */
import type { JsonRpcMessage, McpConnection } from '../src/subpath/mcp.js';

export interface StatelessClientOptions {
  connection: McpConnection;
  protocolVersion: string;
  clientInfo: { name: string; version: string };
}

export interface Tool {
  name: string;
  inputSchema?: unknown;
}

interface Answer {
  result?: unknown;
  error?: { code?: unknown; message?: unknown; data?: { supported?: unknown } };
}

/** JSON-RPC error: the server does not speak the requested protocol version. */
const UNSUPPORTED_PROTOCOL_VERSION = -32022;

export class StatelessClient {
  #nextId = 1;
  #protocolVersion: string;
  readonly #waiting = new Map<number, (answer: Answer) => void>();

  constructor(private readonly options: StatelessClientOptions) {
    this.#protocolVersion = options.protocolVersion;
    options.connection.onmessage = (message) => this.#receive(message);
  }

  async discover(): Promise<unknown> {
    return this.request('server/discover', {});
  }

  async listTools(): Promise<Tool[]> {
    const result = (await this.request('tools/list', {})) as { tools?: Tool[] };
    return result.tools ?? [];
  }

  async callTool(name: string, args: Record<string, unknown>): Promise<unknown> {
    return this.request('tools/call', { name, arguments: args });
  }

  async request(method: string, params: Record<string, unknown>, retried = false): Promise<unknown> {
    const protocolVersion = this.#protocolVersion;
    const id = this.#nextId++;
    const answer = new Promise<Answer>((resolve) => this.#waiting.set(id, resolve));
    this.options.connection.send({
      jsonrpc: '2.0',
      id,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': protocolVersion,
          'io.modelcontextprotocol/clientCapabilities': {},
          'io.modelcontextprotocol/clientInfo': this.options.clientInfo,
        },
      },
    });
    const { result, error } = await answer;
    const supported = supportedVersions(error);
    if (supported !== undefined && !retried) {
      this.#protocolVersion = supported.includes(protocolVersion) ? protocolVersion : (supported[0] ?? '');
      return this.request(method, params, true);
    }
    if (error !== undefined) throw new Error(`${method} failed: ${JSON.stringify(error)}`);
    return result;
  }

  #receive(message: JsonRpcMessage): void {
    if (!('id' in message) || 'method' in message || typeof message.id !== 'number') return;
    const resolve = this.#waiting.get(message.id);
    this.#waiting.delete(message.id);
    resolve?.(message as Answer);
  }
}

/** The versions an UnsupportedProtocolVersion error lists, if that is what `error` is. */
function supportedVersions(error: Answer['error']): string[] | undefined {
  if (error?.code !== UNSUPPORTED_PROTOCOL_VERSION || !Array.isArray(error.data?.supported)) return undefined;
  return error.data.supported.filter((v): v is string => typeof v === 'string');
}
