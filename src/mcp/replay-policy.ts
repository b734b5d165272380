/**
 * Which requests may be sent a second time after their answer was lost. A request the server
 * never processed (401, a 404 for a dead session, a refused connection) may always be resent.
 * One whose answer broke off may have run: it is resent only when running it twice is
 * harmless, which the MCP spec says of reads and lists, and a server says of its own tools
 * through `readOnlyHint` / `idempotentHint`.
 */
import type { JsonRpcRequest } from './jsonrpc.js';

/** Methods without side effects, or whose repetition is harmless, in every revision. */
const REPEATABLE_METHODS = new Set([
  'initialize',
  'ping',
  'tools/list',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'completion/complete',
  'logging/setLevel',
]);

/** Tool names beyond this are not remembered (a server listing more is not normal). */
const MAX_TOOLS = 10_000;

export class ReplayPolicy {
  readonly #repeatableTools = new Set<string>();

  /** Learn the tools' annotations from a tools/list result passing through. */
  learnTools(result: unknown, firstPage: boolean): void {
    if (firstPage) this.#repeatableTools.clear();
    const tools = (result as { tools?: unknown } | undefined)?.tools;
    if (!Array.isArray(tools)) return;
    for (const tool of tools as unknown[]) {
      if (this.#repeatableTools.size >= MAX_TOOLS) return;
      const { name, annotations } = (tool ?? {}) as { name?: unknown; annotations?: Record<string, unknown> };
      if (typeof name !== 'string') continue;
      if (annotations?.['readOnlyHint'] === true || annotations?.['idempotentHint'] === true) {
        this.#repeatableTools.add(name);
      }
    }
  }

  /** May this request run twice without harm? */
  isRepeatable(request: JsonRpcRequest): boolean {
    if (REPEATABLE_METHODS.has(request.method)) return true;
    if (request.method !== 'tools/call') return false;
    const name = request.params?.['name'];
    return typeof name === 'string' && this.#repeatableTools.has(name);
  }
}
