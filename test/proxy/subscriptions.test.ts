import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  ResourceUpdatedNotificationSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

import { spawnHost } from '../support/proxy-env.js';

/**
 * A stateful SDK server with one subscribable resource. It takes a static bearer token
 * (the proxy's `--header Authorization` mode), so the test is about sessions, not OAuth.
 */
interface SubscribableServer {
  url: string;
  /** Per live session: the URIs it is subscribed to. */
  subscriptions(): string[][];
  dropAllSessions(): Promise<void>;
  /** Tell every session subscribed to `uri` that it changed. */
  update(uri: string): Promise<void>;
  close(): Promise<void>;
}

async function startSubscribableServer(): Promise<SubscribableServer> {
  const sessions = new Map<
    string,
    { transport: StreamableHTTPServerTransport; server: McpServer; uris: Set<string> }
  >();
  const http: HttpServer = createServer((req, res) => {
    void (async () => {
      if (req.headers.authorization !== 'Bearer static-token') {
        res.writeHead(401).end();
        return;
      }
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      const id = req.headers['mcp-session-id'];
      const existing = typeof id === 'string' ? sessions.get(id) : undefined;
      if (typeof id === 'string' && existing === undefined) {
        res
          .writeHead(404, { 'content-type': 'application/json' })
          .end('{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}');
        return;
      }
      if (existing !== undefined) {
        await existing.transport.handleRequest(req, res, body);
        return;
      }
      const uris = new Set<string>();
      const server = new McpServer(
        { name: 'subscribable', version: '1.0.0' },
        { capabilities: { resources: { subscribe: true } } },
      );
      server.registerResource('note', 'test://note', { mimeType: 'text/plain' }, () => ({
        contents: [{ uri: 'test://note', text: 'hello' }],
      }));
      server.server.setRequestHandler(SubscribeRequestSchema, (request) => {
        uris.add(request.params.uri);
        return {};
      });
      server.server.setRequestHandler(UnsubscribeRequestSchema, (request) => {
        uris.delete(request.params.uri);
        return {};
      });
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (sid) => void sessions.set(sid, { transport, server, uris }),
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    subscriptions: () => [...sessions.values()].map((s) => [...s.uris]),
    async dropAllSessions() {
      const all = [...sessions.values()];
      sessions.clear();
      for (const s of all) await s.transport.close();
    },
    async update(uri) {
      for (const s of sessions.values())
        if (s.uris.has(uri)) await s.server.server.sendResourceUpdated({ uri });
    },
    async close() {
      for (const s of sessions.values()) await s.transport.close().catch(() => undefined);
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

describe('latchkey proxy: resource subscriptions across a lost session', () => {
  let server: SubscribableServer;
  before(async () => {
    server = await startSubscribableServer();
  });
  after(async () => server.close());

  it('re-subscribes on the new session, and updates keep reaching the host', async () => {
    const host = await spawnHost([server.url, '--header', 'Authorization: Bearer ${STATIC_TOKEN}'], {
      STATIC_TOKEN: 'static-token',
    });
    const updates: string[] = [];
    host.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
      updates.push(n.params.uri);
    });
    await host.client.subscribeResource({ uri: 'test://note' });
    assert.deepEqual(server.subscriptions(), [['test://note']]);

    await server.dropAllSessions();
    // The proxy notices on its listen stream or on the next request; either way it re-subscribes.
    const read = await host.client.readResource({ uri: 'test://note' });
    assert.equal((read.contents[0] as { text?: string }).text, 'hello');
    assert.deepEqual(server.subscriptions(), [['test://note']], 'the new session is subscribed again');

    // The new session's listen stream delivers the update to the host.
    const deadline = Date.now() + 3000;
    while (updates.length === 0 && Date.now() < deadline) {
      await server.update('test://note');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(updates.includes('test://note'), 'the host got the update from the new session');
    assert.doesNotMatch(host.stderr(), /static-token/, 'the header value never reaches the log');
    await host.close();
  });
});
