/**
 * The demo's MCP server (src/demo/mcp-server.ts) with what only tests do to it: its
 * 2026-07-28 face (modern-wire.ts, whose streams a test can break), a 2026-only mode, and
 * dropping every session as a restarted server would.
 */
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

import {
  type McpServerHandle,
  type McpServerOptions as DemoMcpServerOptions,
  startMcpServer as startDemoMcpServer,
} from '../../src/demo/mcp-server.js';
import { Counters } from '../../src/demo/counters.js';
import { createModernWire, type ModernControl } from './modern-wire.js';

export type McpServerOptions = Omit<DemoMcpServerOptions, 'intercept' | 'sessions'> & {
  /**
   * Speak 2026-07-28 only, as a server built for that revision alone: no `initialize`, no
   * sessions, no GET stream (see modern-wire.ts). Default false (both eras).
   */
  modernOnly?: boolean;
};

export interface TestMcpServer extends McpServerHandle {
  /**
   * Besides the demo server's counts: `session` dropped; `modern` and `modern-tool-run`, the
   * 2026-07-28 face (see modern-wire.ts).
   */
  readonly counters: Counters;
  /** The 2026-07-28 (sessionless) face: break its streams, push list changes. */
  readonly modern: ModernControl;
  /** Number of live MCP sessions. */
  readonly sessionCount: number;
  /** Forget every session, as a restarted server would: old session ids then get 404. */
  dropAllSessions(): Promise<void>;
}

export async function startMcpServer(options: McpServerOptions): Promise<TestMcpServer> {
  const { modernOnly, ...demoOptions } = options;
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const counters = new Counters();
  const modern = createModernWire(counters, 'latchkey-test-server');
  const server = await startDemoMcpServer({
    ...demoOptions,
    counters,
    sessions,
    intercept(req, res, body, auth) {
      if (req.method === 'POST' && modern.accepts(body)) {
        // 2026-07-28 requests belong to no session: Mcp-Session-Id is ignored (TR-38).
        modern.handle(req, res, body, auth);
        return true;
      }
      if (modernOnly !== true) return false;
      modern.refuseLegacy(req, res, body);
      return true;
    },
  });
  return {
    url: server.url,
    resourceMetadataUrl: server.resourceMetadataUrl,
    directUrl: server.directUrl,
    counters,
    modern: modern.control,
    get sessionCount() {
      return sessions.size;
    },
    dropAllSessions: () => dropSessions(sessions, counters),
    async close() {
      modern.close();
      await server.close();
    },
  };
}

/**
 * What a server restart does to its sessions: forget every one (so the next request with its
 * id is unknown) and close its transport, counting each as ('session', 'dropped').
 */
export async function dropSessions(
  sessions: Map<string, { close(): Promise<void> }>,
  counters: Counters,
): Promise<void> {
  const transports = [...sessions.values()];
  sessions.clear();
  for (const transport of transports) {
    counters.record('session', 'dropped');
    await transport.close();
  }
}
