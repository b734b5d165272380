/**
 * Just enough of the 2026-07-28 stateless Streamable HTTP wire (SEP-2575, SEP-2243) to carry
 * the conformance client's calls at that revision: `@modelcontextprotocol/sdk` 1.32 speaks
 * 2025-11-25 at most. Every request is one POST carrying its protocol version, client
 * capabilities and client info in `_meta`, and the `MCP-Protocol-Version`, `Mcp-Method` and
 * `Mcp-Name` headers; a version the server refuses (-32022) is retried once with one it lists.
 * No sessions, notifications, server-to-client requests, multi-round-trip results (SEP-2322)
 * or `x-mcp-header` parameter mirroring (SEP-2243).
 */

export interface StatelessClientOptions {
  url: string;
  protocolVersion: string;
  clientInfo: { name: string; version: string };
  fetch: typeof fetch;
}

export interface Tool {
  name: string;
  inputSchema?: unknown;
}

/** JSON-RPC error: the server does not speak the requested protocol version. */
const UNSUPPORTED_PROTOCOL_VERSION = -32022;

export class StatelessClient {
  #nextId = 1;
  #protocolVersion: string;

  constructor(private readonly options: StatelessClientOptions) {
    this.#protocolVersion = options.protocolVersion;
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
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': protocolVersion,
      'mcp-method': method,
    };
    if (typeof params['name'] === 'string') headers['mcp-name'] = params['name'];
    const body = {
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
    };
    const response = await this.options.fetch(this.options.url, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
    });
    const message = await readResponse(response, id);
    const supported = supportedVersions(message.error);
    if (supported !== undefined && !retried) {
      this.#protocolVersion = supported.includes(protocolVersion) ? protocolVersion : (supported[0] ?? '');
      return this.request(method, params, true);
    }
    if (message.error !== undefined) {
      throw new Error(`${method} failed (HTTP ${response.status}): ${JSON.stringify(message.error)}`);
    }
    return message.result;
  }
}

interface JsonRpcResponse {
  id?: unknown;
  result?: unknown;
  error?: unknown;
}

/** The versions an UnsupportedProtocolVersion error lists, if that is what `error` is. */
function supportedVersions(error: unknown): string[] | undefined {
  const { code, data } = (error ?? {}) as { code?: unknown; data?: { supported?: unknown } };
  if (code !== UNSUPPORTED_PROTOCOL_VERSION || !Array.isArray(data?.supported)) return undefined;
  return data.supported.filter((v): v is string => typeof v === 'string');
}

/** The JSON-RPC response with `id`, from a JSON body or an SSE stream. */
async function readResponse(response: Response, id: number): Promise<JsonRpcResponse> {
  const text = await response.text();
  const type = response.headers.get('content-type') ?? '';
  const candidates = type.includes('text/event-stream') ? sseData(text) : [text];
  for (const candidate of candidates) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(candidate);
    } catch {
      continue;
    }
    if (typeof parsed === 'object' && parsed !== null && (parsed as JsonRpcResponse).id === id) {
      return parsed as JsonRpcResponse;
    }
    if (typeof parsed === 'object' && parsed !== null && 'error' in parsed) return parsed as JsonRpcResponse;
  }
  throw new Error(`no JSON-RPC response to request ${id} (HTTP ${response.status}): ${text.slice(0, 200)}`);
}

/** The `data` of each event in an SSE body. */
function sseData(text: string): string[] {
  return text
    .split(/\r?\n\r?\n/)
    .map((event) =>
      event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n'),
    )
    .filter((data) => data !== '');
}
