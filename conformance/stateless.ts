/**
 * The host side of the 2026-07-28 stateless wire (SEP-2575), for the conformance client:
 * `@modelcontextprotocol/sdk` 1.32 speaks 2025-11-25 at most. Each request carries its
 * protocol version, client capabilities and client info in `_meta`, and goes through
 * latchkey's McpConnection, which adds the request-metadata headers (`MCP-Protocol-Version`,
 * `Mcp-Method`, `Mcp-Name`), mirrors `x-mcp-header` parameters into `Mcp-Param-*` and drops
 * tools with invalid annotations from tools/list (SEP-2243), as it does for a proxy host.
 *
 * A version the server refuses (-32022) is retried once with one it lists: era negotiation is
 * the host's part. So are multi-round-trip requests (SEP-2322): a result whose `resultType` is
 * `input_required` is answered here as a host would, each input request filled in (form
 * elicitations accepted, roots listed as none) and the request sent again with a new id,
 * `inputResponses` and the `requestState` echoed exactly when there was one. A result without
 * `resultType` is complete. The connection carries all of it unchanged either way.
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
/** Rounds of input one request may take before the client gives up (a server looping). */
const MAX_INPUT_ROUNDS = 5;

interface InputRequiredResult {
  resultType: 'input_required';
  inputRequests?: Record<string, { method?: unknown; params?: unknown }>;
  requestState?: unknown;
}

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

  async request(method: string, params: Record<string, unknown>): Promise<unknown> {
    const result = await this.#exchange(method, params);
    return isInputRequired(result) ? this.#answerInput(method, params, result) : result;
  }

  /** One request and its answer; a refused protocol version is retried once with another. */
  async #exchange(method: string, params: Record<string, unknown>, retried = false): Promise<unknown> {
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
      return this.#exchange(method, params, true);
    }
    if (error !== undefined) throw new Error(`${method} failed: ${JSON.stringify(error)}`);
    return result;
  }

  /** SEP-2322: fill in what the server asked for and send the request again, as a host would. */
  async #answerInput(
    method: string,
    params: Record<string, unknown>,
    first: InputRequiredResult,
  ): Promise<unknown> {
    let pending = first;
    for (let round = 1; round <= MAX_INPUT_ROUNDS; round++) {
      const inputResponses: Record<string, unknown> = {};
      for (const [key, request] of Object.entries(pending.inputRequests ?? {})) {
        inputResponses[key] = answerInputRequest(request.method);
      }
      const retry: Record<string, unknown> = { ...params, inputResponses };
      // Echoed exactly, never read: the state is the server's (and absent means absent).
      if ('requestState' in pending) retry['requestState'] = pending.requestState;
      const result = await this.#exchange(method, retry);
      if (!isInputRequired(result)) return result;
      pending = result;
    }
    throw new Error(`${method}: the server still asked for input after ${MAX_INPUT_ROUNDS} rounds`);
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

function isInputRequired(result: unknown): result is InputRequiredResult {
  return (result as { resultType?: unknown } | undefined)?.resultType === 'input_required';
}

/** The host's answer to one input request: accept elicitations as they are, share no roots. */
function answerInputRequest(method: unknown): unknown {
  switch (method) {
    case 'elicitation/create':
      return { action: 'accept', content: {} };
    case 'roots/list':
      return { roots: [] };
    default:
      throw new Error(`the conformance host cannot answer the input request ${JSON.stringify(method)}`);
  }
}
