// The proxy's HTTP client (src/mcp/http-client.ts) against a real node:http server: what it
// keeps of fetch's behaviour (errors, aborts, status and headers), what it adds (connections
// kept for the next request, released answers drained), and latchkey's redirect policy on it.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { isLatchkeyError } from '../../src/errors.js';
import { createHttpClient, type WireResponse } from '../../src/mcp/http-client.js';
import { sameOriginWireRedirects } from '../../src/mcp/redirect-policy.js';

interface Seen {
  method: string;
  path: string;
  contentType: string | undefined;
  body: string;
  socket: Socket;
}

type Route = (req: IncomingMessage, res: ServerResponse, body: string) => void;

async function startServer(routes: Record<string, Route>): Promise<{
  origin: string;
  seen: Seen[];
  connections: () => number;
  server: Server;
}> {
  const seen: Seen[] = [];
  let connections = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      seen.push({
        method: req.method ?? '',
        path,
        contentType: req.headers['content-type'],
        body,
        socket: req.socket,
      });
      const route = routes[path];
      if (route === undefined) res.writeHead(404).end('no such path');
      else route(req, res, body);
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    connections: () => connections,
    server,
  };
}

async function text(response: WireResponse): Promise<string> {
  let out = '';
  for await (const chunk of response.body ?? []) out += Buffer.from(chunk).toString();
  return out;
}

const json = (body: string) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body,
});

describe('the proxy HTTP client (node:http)', () => {
  let env: Awaited<ReturnType<typeof startServer>>;
  let release!: () => Promise<void>;
  before(async () => {
    env = await startServer({
      '/echo': (req, res, body) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'x-twice': ['a', 'b'] });
        res.end(`${req.method} ${body}`);
      },
      '/ua': (req, res) => res.end(req.headers['user-agent'] ?? '(none)'),
      '/unauthorized': (_req, res) => {
        res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
      },
      // An event stream whose answer comes first and whose rest comes later.
      '/stream': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: first\n\n');
        release = () => new Promise<void>((resolve) => res.end('data: rest\n\n', () => resolve()));
      },
      '/hang': () => {
        // Never answers: only the caller's signal ends the request.
      },
      '/r/307': (_req, res) => res.writeHead(307, { location: '/echo' }).end(),
      '/r/303': (_req, res) => res.writeHead(303, { location: '/echo' }).end(),
      '/r/away': (_req, res) => res.writeHead(302, { location: 'http://example.invalid/x' }).end(),
    });
  });
  after(() => env.server.close());

  it('answers with status, headers and body, as fetch would', async () => {
    const client = createHttpClient();
    const ok = await client(new URL('/echo', env.origin), json('{"a":1}'));
    assert.equal(ok.status, 200);
    assert.equal(ok.ok, true);
    assert.equal(ok.headers.get('Content-Type'), 'text/plain');
    assert.equal(ok.headers.get('x-twice'), 'a, b');
    assert.equal(ok.headers.get('x-absent'), null);
    assert.equal(await text(ok), 'POST {"a":1}');
    const refused = await client(new URL('/unauthorized', env.origin), { method: 'GET', headers: {} });
    assert.equal(refused.ok, false);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
  });

  it('sends Node fetch’s User-Agent unless the caller gives one', async () => {
    const client = createHttpClient();
    assert.equal(
      await text(await client(new URL('/ua', env.origin), { method: 'GET', headers: {} })),
      'node',
    );
    const own = await client(new URL('/ua', env.origin), {
      method: 'GET',
      headers: { 'User-Agent': 'host/1' },
    });
    assert.equal(await text(own), 'host/1');
  });

  it('carries request after request over one kept-alive connection', async () => {
    const client = createHttpClient();
    const before = env.connections();
    for (let i = 0; i < 5; i++) {
      const response = await client(new URL('/echo', env.origin), json(`{"i":${i}}`));
      assert.equal(await text(response), `POST {"i":${i}}`);
    }
    assert.equal(env.connections() - before, 1);
  });

  it('a connection the server closed is not used, even when its close is not yet handled', async () => {
    // A restart or an idle timeout: the server drops its kept-alive connections, and the next
    // request is decided before this process has read the close. Sent on the old connection,
    // it would fail as "may have run" though no server ever saw it (test/proxy/restart.test.ts).
    const own = await startServer({ '/echo': (req, res, body) => res.end(`${req.method} ${body}`) });
    try {
      const client = createHttpClient();
      assert.equal(await text(await client(new URL('/echo', own.origin), json('1'))), 'POST 1');
      // In one callback of the loop's timer phase: the server drops the connection, the close
      // waits in the kernel unread by this process, and the next request is decided, as a
      // host's request read in the same turn as the close would be.
      const sent = new Promise<WireResponse>((resolve, reject) => {
        setTimeout(() => {
          own.server.closeAllConnections();
          const until = Date.now() + 30;
          while (Date.now() < until);
          client(new URL('/echo', own.origin), json('2')).then(resolve, reject);
        }, 10);
      });
      const next = await sent;
      assert.equal(await text(next), 'POST 2');
      assert.equal(own.connections(), 2, 'the second request went out on a new connection');
      assert.deepEqual(
        own.seen.map((s) => s.body),
        ['1', '2'],
      );
    } finally {
      own.server.close();
    }
  });

  it('a released answer is drained, and its connection carries the next request', async () => {
    const client = createHttpClient();
    const before = env.connections();
    // A POST answered by a stream: the wire releases it once it has the answer it needs.
    const response = await client(new URL('/stream', env.origin), json('{}'));
    const body = response.body;
    assert.ok(body?.release !== undefined);
    const chunks = body[Symbol.asyncIterator]();
    const first = await chunks.next();
    assert.equal(Buffer.from(first.value as Uint8Array).toString(), 'data: first\n\n');
    body.release();
    await release();
    // The client reads the end of the drained answer as soon as it can; then the connection is free.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const next = await client(new URL('/echo', env.origin), json('{}'));
    assert.equal(await text(next), 'POST {}');
    assert.equal(env.connections() - before, 1, 'the released connection was used again');
    const [stream, echo] = env.seen.slice(-2);
    assert.equal(stream?.socket, echo?.socket);
  });

  it('a GET stream that ended does not leave its connection for the next request', async () => {
    // The listen stream ends when the server goes away; its close may come a moment after the
    // stream's last byte, and a request put on that connection meanwhile is lost
    // (test/proxy/restart.test.ts). The server here keeps the connection open after the end,
    // so only the client's choice decides where the next request goes.
    const own = await startServer({
      '/listen': (_req, res) => {
        // As the SDK's event streams say it: the client cannot learn from the server to close.
        res.writeHead(200, { 'content-type': 'text/event-stream', connection: 'keep-alive' });
        res.end('data: bye\n\n');
      },
      '/echo': (req, res, body) => res.end(`${req.method} ${body}`),
    });
    try {
      const client = createHttpClient();
      const stream = await client(new URL('/listen', own.origin), {
        method: 'GET',
        headers: { accept: 'text/event-stream' },
      });
      assert.equal(await text(stream), 'data: bye\n\n');
      const next = await client(new URL('/echo', own.origin), json('after'));
      assert.equal(await text(next), 'POST after');
      const [listen, echo] = own.seen;
      assert.notEqual(listen?.socket, echo?.socket, 'the request went out on a new connection');
      assert.equal(own.connections(), 2);
    } finally {
      own.server.closeAllConnections();
      own.server.close();
    }
  });

  it('a cancelled answer closes its connection', async () => {
    const client = createHttpClient();
    const before = env.connections();
    const response = await client(new URL('/stream', env.origin), { method: 'GET', headers: {} });
    const serverSide = env.seen.at(-1)?.socket;
    const closed = new Promise<void>((resolve) => serverSide?.once('close', () => resolve()));
    await response.body?.cancel();
    await closed;
    void release();
    await text(await client(new URL('/echo', env.origin), json('{}')));
    assert.equal(env.connections() - before, 2);
  });

  it('an abort ends the request with the signal’s reason, and the server sees it go', async () => {
    const client = createHttpClient();
    const abort = new AbortController();
    const pending = client(new URL('/hang', env.origin), {
      method: 'GET',
      headers: {},
      signal: abort.signal,
    });
    while (env.seen.at(-1)?.path !== '/hang') await new Promise((r) => setTimeout(r, 5));
    const closed = new Promise<void>((resolve) => env.seen.at(-1)?.socket.once('close', () => resolve()));
    const reason = new Error('the request was answered');
    abort.abort(reason);
    await assert.rejects(pending, (error) => error === reason);
    await closed;
    await assert.rejects(
      client(new URL('/echo', env.origin), { method: 'GET', headers: {}, signal: abort.signal }),
      (error) => error === reason,
    );
  });

  it('a network failure is fetch’s TypeError with the system error as its cause', async () => {
    const closedServer = createServer();
    await new Promise<void>((resolve) => closedServer.listen(0, '127.0.0.1', resolve));
    const port = (closedServer.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closedServer.close(() => resolve()));
    await assert.rejects(
      createHttpClient()(new URL(`http://127.0.0.1:${port}/`), { method: 'GET', headers: {} }),
      (error) =>
        error instanceof TypeError &&
        (error.cause as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED',
    );
  });

  it('follows same-origin redirects by the one policy: 307 keeps the body, 303 becomes a bare GET', async () => {
    const send = sameOriginWireRedirects(env.origin, createHttpClient());
    const kept = await send(new URL('/r/307', env.origin), json('{"k":1}'));
    assert.equal(await text(kept), 'POST {"k":1}');
    assert.deepEqual(
      env.seen.slice(-2).map((s) => [s.method, s.path, s.body]),
      [
        ['POST', '/r/307', '{"k":1}'],
        ['POST', '/echo', '{"k":1}'],
      ],
    );
    const got = await send(new URL('/r/303', env.origin), json('{"k":2}'));
    assert.equal(await text(got), 'GET ');
    const last = env.seen.at(-1);
    assert.equal(last?.method, 'GET');
    assert.equal(last?.contentType, undefined, 'the body headers went with the body');
  });

  it('refuses a redirect to another origin, naming the server, and sends nothing there', async () => {
    const send = sameOriginWireRedirects(env.origin, createHttpClient());
    await assert.rejects(send(new URL('/r/away', env.origin), json('{}')), (error) => {
      assert.ok(isLatchkeyError(error));
      assert.equal(error.server, env.origin);
      assert.match(error.message, /example\.invalid/);
      return true;
    });
  });
});
