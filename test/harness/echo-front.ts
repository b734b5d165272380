/**
 * A hostile front on 127.0.0.1: it passes everything through to its target (an AS or an MCP
 * server) except the requests `answer` chooses to answer itself, with what it read from the
 * request. It stages servers that echo what they were sent (a refresh token in an
 * `error_description`, a bearer token or an API key in a 401 body) and servers whose error
 * text carries terminal escapes or megabytes of filler. The fault proxy's answers are fixed
 * in advance; these are built from each request.
 */
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';

import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';

export interface EchoRequest {
  method: string;
  /** Path without the query. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The request body as text (form or JSON). */
  body: string;
}

export interface EchoAnswer {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

export interface EchoFront {
  readonly origin: string;
  setTarget(origin: string): void;
  /** Decides per request: an answer, or undefined to pass it through. Default: pass all. */
  answer: ((request: EchoRequest) => EchoAnswer | undefined) | undefined;
  /** Requests answered by `answer` so far. */
  readonly answered: number;
  close(): Promise<void>;
}

export async function startEchoFront(): Promise<EchoFront> {
  let target: URL | undefined;
  let answered = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const seen: EchoRequest = {
        method: req.method ?? 'GET',
        path: new URL(req.url ?? '/', 'http://x').pathname,
        headers: req.headers,
        body: body.toString('utf8'),
      };
      const own = front.answer?.(seen);
      if (own !== undefined) {
        answered++;
        res.writeHead(own.status, { 'content-type': 'application/json', ...own.headers }).end(own.body);
        return;
      }
      if (target === undefined) {
        res.writeHead(503).end();
        return;
      }
      const upstream = httpRequest(
        new URL(req.url ?? '/', target),
        { method: req.method, headers: req.headers },
        (reply) => {
          res.writeHead(reply.statusCode ?? 502, reply.headers);
          reply.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    });
  });
  const sockets = trackSockets(server);
  const origin = await listenOnLoopback(server);
  const front: EchoFront = {
    origin,
    setTarget(t) {
      target = new URL(t);
    },
    answer: undefined,
    get answered() {
      return answered;
    },
    close: () => closeServer(server, sockets),
  };
  return front;
}
