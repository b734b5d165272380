/**
 * `x-mcp-header` (2026-07-28, SEP-2243): a tool's inputSchema may mark primitive parameters
 * to be mirrored into `Mcp-Param-{Name}` headers on tools/call. Clients MUST mirror them, and
 * MUST drop from tools/list any tool whose annotations break the rules, so that one bad tool
 * does not take the others down:
 *
 * - the name is a non-empty HTTP token, unique (case-insensitively) within the schema;
 * - the parameter is a string, integer or boolean (not `number`);
 * - it is reachable from the schema root through `properties` keys only (not through
 *   `items`, `oneOf`, `$ref` and the like).
 *
 * The connection learns the annotations from tools/list answers passing through to a host
 * that speaks 2026-07-28.
 */

/** The path of `properties` keys from the root to an annotated parameter, and its header. */
interface Mirror {
  readonly header: string;
  readonly path: readonly string[];
}

export interface RejectedTool {
  name: string;
  reason: string;
}

/** Tools beyond this are not remembered (a server listing more is not normal). */
const MAX_TOOLS = 10_000;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PRIMITIVE = new Set(['string', 'integer', 'boolean']);
/** Schema keywords whose value maps names to schemas. */
const NAME_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);

export class ToolHeaders {
  readonly #mirrors = new Map<string, readonly Mirror[]>();

  /**
   * Learn a tools/list page. Returns the page as the host should see it: without the tools
   * whose `x-mcp-header` annotations are invalid, which are listed in `rejected`.
   */
  learn(result: unknown, firstPage: boolean): { result: unknown; rejected: RejectedTool[] } {
    if (firstPage) this.#mirrors.clear();
    const tools = (result as { tools?: unknown } | undefined)?.tools;
    if (!Array.isArray(tools)) return { result, rejected: [] };
    const kept: unknown[] = [];
    const rejected: RejectedTool[] = [];
    for (const tool of tools as unknown[]) {
      const name = (tool as { name?: unknown } | null)?.name;
      if (typeof name !== 'string') {
        kept.push(tool);
        continue;
      }
      const mirrors = readMirrors((tool as { inputSchema?: unknown }).inputSchema);
      if (typeof mirrors === 'string') {
        rejected.push({ name, reason: mirrors });
        continue;
      }
      if (this.#mirrors.size < MAX_TOOLS || this.#mirrors.has(name)) this.#mirrors.set(name, mirrors);
      kept.push(tool);
    }
    if (rejected.length === 0) return { result, rejected };
    return { result: { ...(result as object), tools: kept }, rejected };
  }

  /** Has a tools/list told us about this tool? */
  knows(tool: string): boolean {
    return this.#mirrors.has(tool);
  }

  /** The `[header name, value]` pairs for a call of `tool` with `args`; absent and null values are omitted. */
  mirror(tool: string, args: unknown): Array<[string, string]> {
    const pairs: Array<[string, string]> = [];
    for (const { header, path } of this.#mirrors.get(tool) ?? []) {
      const value = valueAt(args, path);
      if (typeof value === 'string') pairs.push([header, value]);
      else if (typeof value === 'boolean') pairs.push([header, value ? 'true' : 'false']);
      else if (typeof value === 'number' && Number.isSafeInteger(value)) pairs.push([header, String(value)]);
    }
    return pairs;
  }
}

/** The schema's mirrors, or why the tool must be dropped. */
function readMirrors(schema: unknown): Mirror[] | string {
  const found: Array<{ header: unknown; at: string[]; node: Record<string, unknown> }> = [];
  collect(schema, [], found, new Set(), false);
  const mirrors: Mirror[] = [];
  const seen = new Set<string>();
  for (const { header, at, node } of found) {
    const where = at.length === 0 ? 'the schema root' : at.join('.');
    if (typeof header !== 'string' || !TOKEN.test(header))
      return `x-mcp-header at ${where} is not an HTTP token`;
    if (seen.has(header.toLowerCase())) return `x-mcp-header "${header}" is used twice`;
    seen.add(header.toLowerCase());
    const path = propertyPath(at);
    if (path === undefined) return `x-mcp-header "${header}" at ${where} is not reachable through properties`;
    if (typeof node['type'] !== 'string' || !PRIMITIVE.has(node['type']))
      return `x-mcp-header "${header}" is on a parameter that is not a string, integer or boolean`;
    mirrors.push({ header, path });
  }
  return mirrors;
}

/**
 * Every schema object that carries `x-mcp-header`, with the keys leading to it. The values of
 * `properties` and the like are maps of names, not schemas: a parameter may be called
 * "x-mcp-header".
 */
function collect(
  node: unknown,
  at: string[],
  found: Array<{ header: unknown; at: string[]; node: Record<string, unknown> }>,
  visited: Set<object>,
  nameMap: boolean,
): void {
  if (typeof node !== 'object' || node === null || visited.has(node)) return;
  visited.add(node);
  if (Array.isArray(node)) {
    node.forEach((item, index) => collect(item, [...at, String(index)], found, visited, false));
    return;
  }
  const record = node as Record<string, unknown>;
  if (!nameMap && 'x-mcp-header' in record) found.push({ header: record['x-mcp-header'], at, node: record });
  for (const [key, value] of Object.entries(record)) {
    collect(value, [...at, key], found, visited, !nameMap && NAME_MAPS.has(key));
  }
}

/** `properties.a.properties.b` → ['a', 'b']; anything else → undefined. */
function propertyPath(at: readonly string[]): string[] | undefined {
  if (at.length === 0 || at.length % 2 !== 0) return undefined;
  const path: string[] = [];
  for (let i = 0; i < at.length; i += 2) {
    const name = at[i + 1];
    if (at[i] !== 'properties' || name === undefined) return undefined;
    path.push(name);
  }
  return path;
}

function valueAt(args: unknown, path: readonly string[]): unknown {
  let value = args;
  for (const key of path) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined;
  }
  return value;
}
