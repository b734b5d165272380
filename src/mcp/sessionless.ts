/**
 * The 2026-07-28 path: every request is one POST outside any session, with the
 * request-metadata headers (`Mcp-Method`, `Mcp-Name`, and the `x-mcp-header` values each
 * tool declares). A broken stream re-issues the request under a new id (TR-32); a
 * HeaderMismatch is answered by reading tools/list again, since the annotations may have
 * changed (or were never read).
 */
import type { Logger } from '../log.js';
import { INTERNAL_PREFIX } from './connection-options.js';
import type { JsonRpcRequest, JsonRpcResponse } from './jsonrpc.js';
import { requestMetadataHeaders } from './request-metadata.js';
import type { Deliver, StreamableHttpWire } from './streamable-http.js';
import { ToolHeaders } from './tool-headers.js';

/** tools/list pages read when relearning `x-mcp-header` annotations. */
const MAX_TOOL_PAGES = 20;

export class Sessionless {
  readonly #tools = new ToolHeaders();
  readonly #http: StreamableHttpWire;
  readonly #deliver: Deliver;
  readonly #log: Logger;
  #nextId = 0;

  constructor(http: StreamableHttpWire, deliver: Deliver, log: Logger) {
    this.#http = http;
    this.#deliver = deliver;
    this.#log = log;
  }

  /** A fresh id for latchkey's own requests on this path. */
  nextId(tag = 'm'): string {
    return `${INTERNAL_PREFIX}${tag}${++this.#nextId}`;
  }

  /**
   * One request, outside any session. After the first round it goes under a new id (TR-32);
   * the answer carries the request's own id back.
   */
  async exchange(
    request: JsonRpcRequest,
    revision: string,
    round: number,
    signal: AbortSignal,
  ): Promise<JsonRpcResponse> {
    const wire = round === 0 ? request : { ...request, id: this.nextId() };
    const modern = requestMetadataHeaders(wire, revision, this.#tools);
    const answer = await this.#http.exchange(wire, this.#deliver, signal, { modern });
    return { ...answer, id: request.id };
  }

  /**
   * Learn the tools' `x-mcp-header` annotations from a tools/list page. Returns the page for
   * the host, without the tools whose annotations are invalid (the spec says to drop them).
   */
  learnToolHeaders(request: JsonRpcRequest, result: unknown): unknown {
    const learned = this.#tools.learn(result, request.params?.['cursor'] === undefined);
    for (const { name, reason } of learned.rejected) {
      this.#log.warn(`left the tool "${name}" out of the list: ${reason}`);
    }
    return learned.result;
  }

  /** Read every page of tools/list with the host's request metadata, for `x-mcp-header`. */
  async relearnTools(like: JsonRpcRequest, revision: string, signal: AbortSignal): Promise<void> {
    this.#log.info('the server refused the request headers; reading tools/list again', {
      method: like.method,
    });
    const meta = like.params?.['_meta'];
    let cursor: unknown;
    for (let page = 0; page < MAX_TOOL_PAGES; page++) {
      const params = { _meta: meta, ...(cursor === undefined ? {} : { cursor }) };
      const request: JsonRpcRequest = { jsonrpc: '2.0', id: this.nextId(), method: 'tools/list', params };
      const response = await this.exchange(request, revision, 0, signal);
      if (response.error !== undefined) return;
      this.learnToolHeaders(request, response.result);
      cursor = (response.result as { nextCursor?: unknown } | undefined)?.nextCursor;
      if (typeof cursor !== 'string') return;
    }
  }
}
