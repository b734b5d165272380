/**
 * The harness MCP server's 2026-07-28 face: sessionless requests that carry their protocol
 * version in `_meta`, checked against the request-metadata headers the way the revision
 * tells servers to (TR-34 to TR-36):
 *
 * - a header that is missing or disagrees with the body → 400, JSON-RPC `-32020`;
 * - a version other than 2026-07-28 → 400, `-32022` listing the supported ones;
 * - an unknown method → 404, `-32601`.
 *
 * No SDK line serves this revision yet, so the test harness answers it by hand: `server/discover`,
 * `tools/list`, `tools/call` and `subscriptions/listen`. Tests can break the next response
 * streams (the request is then lost and never runs, as TR-33 says closing a stream cancels
 * it) and push `notifications/tools/list_changed` to open listen streams.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';

import type { Counters } from '../../src/demo/counters.js';
import { sendJson } from '../../src/demo/reply.js';

export const MODERN_VERSION = '2026-07-28';
const VERSION_META = 'io.modelcontextprotocol/protocolVersion';

export const ModernCode = {
  HEADER_MISMATCH: -32020,
  UNSUPPORTED_VERSION: -32022,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
} as const;

interface ModernRequest {
  jsonrpc: '2.0';
  id?: string | number;
  method: string;
  params: Record<string, unknown> & { _meta: Record<string, unknown> };
}

interface ToolSpec {
  readonly name: string;
  readonly description: string;
  readonly inputSchema: Record<string, unknown>;
  /** Parameter name → header name, for the parameters marked `x-mcp-header`. */
  readonly headers: Readonly<Record<string, string>>;
  run(args: Record<string, unknown>, auth: AuthInfo): string;
}

const TOOLS: readonly ToolSpec[] = [
  {
    name: 'echo',
    description: 'Returns its input',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
    headers: {},
    run: (args) => String(args['text']),
  },
  {
    name: 'whoami',
    description: "The subject of the caller's token",
    inputSchema: { type: 'object', properties: {} },
    headers: {},
    run: (_args, auth) => String(auth.extra?.['sub'] ?? ''),
  },
  {
    name: 'route',
    description: 'Answers where a gateway would have routed the call',
    inputSchema: {
      type: 'object',
      properties: {
        region: { type: 'string', 'x-mcp-header': 'Region' },
        shard: { type: 'integer', 'x-mcp-header': 'Shard' },
      },
      required: ['region'],
    },
    headers: { region: 'Region', shard: 'Shard' },
    run: (args) => `region=${String(args['region'])} shard=${String(args['shard'] ?? '-')}`,
  },
  {
    // `number` may not be mirrored: a client must leave this tool out of its list.
    name: 'broken-header',
    description: 'Carries an invalid x-mcp-header annotation',
    inputSchema: { type: 'object', properties: { level: { type: 'number', 'x-mcp-header': 'Level' } } },
    headers: { level: 'Level' },
    run: (args) => String(args['level']),
  },
];

export interface ModernControl {
  /** Send `notifications/tools/list_changed` on every open listen stream. */
  notifyToolsChanged(): void;
  /** Cut the next `n` response streams before the request runs. */
  breakNextStreams(n: number): void;
  /** Open `subscriptions/listen` streams. */
  readonly listenStreams: number;
}

export interface ModernWire {
  /** Is this body a 2026-07-28 request (version in `_meta`)? */
  accepts(body: unknown): boolean;
  handle(req: IncomingMessage, res: ServerResponse, body: unknown, auth: AuthInfo): void;
  /**
   * Answer a 2025-era request as a 2026-only server does (TR-36, TR-38): 405 to GET and
   * DELETE, 400 -32020 to a POST without a matching MCP-Protocol-Version header, 400 -32022
   * to one naming another version.
   */
  refuseLegacy(req: IncomingMessage, res: ServerResponse, body: unknown): void;
  readonly control: ModernControl;
  close(): void;
}

/**
 * `counters`: `modern` (request | header-mismatch | unsupported-version | stream-broken |
 * listen-open | listen-closed) and `modern-tool-run` (tool names, counted when a tool ran).
 */
export function createModernWire(counters: Counters, serverName: string): ModernWire {
  const listeners = new Set<ServerResponse>();
  let breaks = 0;

  function handle(req: IncomingMessage, res: ServerResponse, body: unknown, auth: AuthInfo): void {
    const request = body as ModernRequest;
    counters.record('modern', 'request');
    const version = request.params._meta[VERSION_META];
    if (version !== MODERN_VERSION) {
      counters.record('modern', 'unsupported-version');
      reject(res, 400, request, ModernCode.UNSUPPORTED_VERSION, 'Unsupported protocol version', {
        supported: [MODERN_VERSION],
        requested: version,
      });
      return;
    }
    const mismatch = headerMismatch(req, request);
    if (mismatch !== undefined) {
      counters.record('modern', 'header-mismatch');
      reject(res, 400, request, ModernCode.HEADER_MISMATCH, `Header mismatch: ${mismatch}`);
      return;
    }
    if (request.id === undefined) {
      res.writeHead(202).end();
      return;
    }
    switch (request.method) {
      case 'server/discover':
        sendJson(res, 200, result(request, discover(serverName)));
        return;
      case 'tools/list':
        sendJson(
          res,
          200,
          result(request, {
            tools: TOOLS.map(({ name, description, inputSchema }) => ({ name, description, inputSchema })),
          }),
        );
        return;
      case 'tools/call':
        call(res, request, auth);
        return;
      case 'subscriptions/listen':
        listen(res, request);
        return;
      default:
        reject(res, 404, request, ModernCode.METHOD_NOT_FOUND, `Method not found: ${request.method}`);
    }
  }

  function call(res: ServerResponse, request: ModernRequest, auth: AuthInfo): void {
    const tool = TOOLS.find((t) => t.name === request.params['name']);
    if (tool === undefined) {
      reject(res, 200, request, ModernCode.INVALID_PARAMS, `Unknown tool: ${String(request.params['name'])}`);
      return;
    }
    openStream(res);
    if (breaks > 0) {
      breaks--;
      counters.record('modern', 'stream-broken');
      res.socket?.destroy();
      return;
    }
    const args = (request.params['arguments'] ?? {}) as Record<string, unknown>;
    counters.record('modern-tool-run', tool.name);
    const text = tool.run(args, auth);
    writeEvent(res, result(request, { content: [{ type: 'text', text }] }));
    res.end();
  }

  function listen(res: ServerResponse, request: ModernRequest): void {
    openStream(res);
    listeners.add(res);
    counters.record('modern', 'listen-open');
    writeEvent(res, {
      jsonrpc: '2.0',
      method: 'notifications/subscriptions/acknowledged',
      params: { requestId: request.id },
    });
    // The client ends a listen by closing it (TR-33).
    res.once('close', () => {
      if (listeners.delete(res)) counters.record('modern', 'listen-closed');
    });
  }

  function refuseLegacy(req: IncomingMessage, res: ServerResponse, body: unknown): void {
    counters.record('modern', 'legacy-refused');
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    const request = { id: (body as { id?: string | number } | null)?.id } as ModernRequest;
    const version = req.headers['mcp-protocol-version'];
    if (typeof version !== 'string' || version === MODERN_VERSION) {
      reject(res, 400, request, ModernCode.HEADER_MISMATCH, 'Missing MCP-Protocol-Version header');
      return;
    }
    reject(res, 400, request, ModernCode.UNSUPPORTED_VERSION, 'Unsupported protocol version', {
      supported: [MODERN_VERSION],
      requested: version,
    });
  }

  return {
    accepts: isModern,
    handle,
    refuseLegacy,
    control: {
      notifyToolsChanged() {
        for (const res of listeners) {
          writeEvent(res, { jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
        }
      },
      breakNextStreams(n) {
        breaks = n;
      },
      get listenStreams() {
        return listeners.size;
      },
    },
    close() {
      for (const res of listeners) res.destroy();
      listeners.clear();
    },
  };
}

function isModern(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const { method, params } = body as { method?: unknown; params?: { _meta?: unknown } };
  const meta = params?._meta;
  return (
    typeof method === 'string' &&
    typeof meta === 'object' &&
    meta !== null &&
    typeof (meta as Record<string, unknown>)[VERSION_META] === 'string'
  );
}

/** What disagrees between the request-metadata headers and the body, if anything. */
function headerMismatch(req: IncomingMessage, request: ModernRequest): string | undefined {
  const expected: Array<[string, string | undefined]> = [
    ['mcp-protocol-version', String(request.params._meta[VERSION_META])],
    ['mcp-method', request.method],
  ];
  if (request.method === 'tools/call' || request.method === 'prompts/get')
    expected.push(['mcp-name', stringOrUndefined(request.params['name'])]);
  if (request.method === 'resources/read')
    expected.push(['mcp-name', stringOrUndefined(request.params['uri'])]);
  const tool = TOOLS.find((t) => t.name === request.params['name']);
  if (request.method === 'tools/call' && tool !== undefined) {
    const args = (request.params['arguments'] ?? {}) as Record<string, unknown>;
    for (const [param, name] of Object.entries(tool.headers)) {
      expected.push([`mcp-param-${name.toLowerCase()}`, headerForm(args[param])]);
    }
  }
  for (const [name, want] of expected) {
    const raw = req.headers[name];
    const got = typeof raw === 'string' ? decodeHeaderValue(raw) : undefined;
    if (got !== want) return got === undefined ? `missing ${name}` : `${name} does not match the body`;
  }
  return undefined;
}

function headerForm(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean' || typeof value === 'number') return String(value);
  return undefined;
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The spec's Value Encoding: `=?base64?…?=` holds UTF-8 bytes; anything else is literal. */
export function decodeHeaderValue(value: string): string {
  const match = /^=\?base64\?(.*)\?=$/.exec(value);
  return match?.[1] === undefined ? value : Buffer.from(match[1], 'base64').toString('utf8');
}

/** The DiscoverResult of the 2026-07-28 schema; server info in `_meta` (spec PR #3002). */
function discover(serverName: string): object {
  return {
    resultType: 'complete',
    ttlMs: 0,
    cacheScope: 'private',
    supportedVersions: [MODERN_VERSION],
    capabilities: { tools: { listChanged: true } },
    instructions: 'A latchkey test server speaking 2026-07-28.',
    _meta: { 'io.modelcontextprotocol/serverInfo': { name: serverName, version: '1.0.0' } },
  };
}

function result(request: ModernRequest, value: object): object {
  return { jsonrpc: '2.0', id: request.id, result: value };
}

function reject(
  res: ServerResponse,
  status: number,
  request: ModernRequest,
  code: number,
  message: string,
  data?: object,
): void {
  const error = data === undefined ? { code, message } : { code, message, data };
  sendJson(res, status, { jsonrpc: '2.0', id: request.id ?? null, error });
}

function openStream(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
}

function writeEvent(res: ServerResponse, message: object): void {
  res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
}
