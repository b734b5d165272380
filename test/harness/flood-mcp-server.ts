/**
 * A hostile Streamable HTTP MCP server on 127.0.0.1 for the proxy's memory bounds (issue 14,
 * point 4). It completes the handshake like any server, then:
 * - its GET listen stream is an endless flood of `notifications/message` events, written
 *   from a generator with backpressure (so `sentBytes` shows whether the proxy stopped
 *   reading);
 * - `tools/call` with `{ name: 'big', arguments: { bytes, as: 'json' | 'sse' } }` answers with
 *   a text result of `bytes` bytes, as a JSON body or as one SSE event.
 * It also speaks the legacy HTTP+SSE transport at `legacyUrl`: `GET /sse` names `/messages`
 * as its endpoint, then floods; answers to POSTed requests go out between flood events.
 * No authorization: the proxy runs with a static Authorization header.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';

export interface FloodMcpServer {
  readonly url: string;
  /** The legacy HTTP+SSE stream URL. */
  readonly legacyUrl: string;
  /** Bytes written to listen streams so far. */
  readonly sentBytes: number;
  /** GET listen streams opened so far. */
  readonly listens: number;
  close(): Promise<void>;
}

const EVENT = Buffer.from(
  `event: message\ndata: ${JSON.stringify({
    jsonrpc: '2.0',
    method: 'notifications/message',
    params: { level: 'info', data: 'x'.repeat(1000) },
  })}\n\n`,
);
const FILLER = Buffer.alloc(64 * 1024, 'a');

export async function startFloodMcpServer(): Promise<FloodMcpServer> {
  let sentBytes = 0;
  let listens = 0;
  /** Answers waiting to go out on the legacy stream. */
  const legacyQueue: Buffer[] = [];
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'GET' && path === '/sse') {
      listens++;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write('event: endpoint\ndata: /messages\n\n');
      void flood(res, (n) => (sentBytes += n), legacyQueue);
      return;
    }
    if (req.method === 'POST' && path === '/messages') {
      void answerLegacy(req, res, legacyQueue);
      return;
    }
    if (req.method === 'GET') {
      listens++;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      void flood(res, (n) => (sentBytes += n));
      return;
    }
    if (req.method === 'DELETE') {
      res.writeHead(200).end();
      return;
    }
    void answerPost(req, res);
  });
  const sockets = trackSockets(server);
  const origin = await listenOnLoopback(server);
  return {
    url: `${origin}/mcp`,
    legacyUrl: `${origin}/sse`,
    get sentBytes() {
      return sentBytes;
    },
    get listens() {
      return listens;
    },
    close: () => closeServer(server, sockets),
  };
}

interface Request {
  id?: string | number;
  method?: string;
  params?: { protocolVersion?: string; name?: string; arguments?: { bytes?: number; as?: string } };
}

async function answerPost(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const message = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Request;
  if (message.id === undefined) {
    res.writeHead(202).end();
    return;
  }
  const reply = (result: unknown): void => {
    res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'flood-session' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
  };
  if (message.method === 'initialize') {
    reply({
      protocolVersion: message.params?.protocolVersion ?? '2025-06-18',
      capabilities: { tools: {}, logging: {} },
      serverInfo: { name: 'flood', version: '1.0.0' },
    });
    return;
  }
  if (message.method === 'tools/call' && message.params?.name === 'big') {
    const bytes = message.params.arguments?.bytes ?? 0;
    const sse = message.params.arguments?.as === 'sse';
    const head = `${sse ? 'event: message\ndata: ' : ''}{"jsonrpc":"2.0","id":${JSON.stringify(message.id)},"result":{"content":[{"type":"text","text":"`;
    res.writeHead(200, { 'content-type': sse ? 'text/event-stream' : 'application/json' });
    res.write(head);
    for (let left = bytes; left > 0 && !res.destroyed; left -= FILLER.byteLength) {
      if (!res.write(left >= FILLER.byteLength ? FILLER : FILLER.subarray(0, left))) {
        if (!(await drained(res))) return;
      }
    }
    res.end(`"}]}}${sse ? '\n\n' : ''}`);
    return;
  }
  reply({});
}

/**
 * Events until the client hangs up, waiting for drain whenever the socket is full. Queued
 * answers (legacy transport) go out first.
 */
async function flood(
  res: ServerResponse,
  count: (bytes: number) => void,
  queue: Buffer[] = [],
): Promise<void> {
  while (!res.destroyed) {
    const next = queue.shift() ?? EVENT;
    count(next.byteLength);
    if (!res.write(next) && !(await drained(res))) return;
  }
}

/** A legacy POST: accepted at once, answered on the stream. */
async function answerLegacy(req: IncomingMessage, res: ServerResponse, queue: Buffer[]): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const message = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Request;
  res.writeHead(202).end();
  if (message.id === undefined) return;
  const result =
    message.method === 'initialize'
      ? {
          protocolVersion: message.params?.protocolVersion ?? '2024-11-05',
          capabilities: { tools: {}, logging: {} },
          serverInfo: { name: 'flood', version: '1.0.0' },
        }
      : {};
  queue.push(
    Buffer.from(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: message.id, result })}\n\n`),
  );
}

/** True on drain, false once the client has gone. */
function drained(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const settle = (open: boolean) => (): void => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(open);
    };
    const onDrain = settle(true);
    const onClose = settle(false);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}
