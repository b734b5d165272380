/**
 * A front for the test AS (`frontedBy`) that passes everything through, except that the JSON
 * bodies of successful token endpoint answers go through `edit` first. It stages what some
 * real ASes send and oidc-provider never would: an ID token signed HS256 without `iss`
 * (better-auth), a token type nobody knows, a missing access token.
 */
import { createServer, request as httpRequest } from 'node:http';

import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';

export type TokenEdit = (body: Record<string, unknown>) => Record<string, unknown>;

export interface TokenRewriter {
  readonly origin: string;
  setTarget(origin: string): void;
  /** The edit applied from now on; undefined passes answers through unchanged. */
  edit: TokenEdit | undefined;
  /** Token answers edited so far. */
  readonly edited: number;
  close(): Promise<void>;
}

export async function startTokenRewriter(tokenPath = '/token'): Promise<TokenRewriter> {
  let target: URL | undefined;
  let edited = 0;
  const server = createServer((req, res) => {
    if (target === undefined) {
      res.writeHead(503).end();
      return;
    }
    const upstream = httpRequest(
      new URL(req.url ?? '/', target),
      { method: req.method, headers: req.headers },
      (answer) => {
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        const edit = rewriter.edit;
        if (edit === undefined || path !== tokenPath || answer.statusCode !== 200) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          const body = JSON.stringify(edit(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
          edited++;
          const headers = { ...answer.headers, 'content-length': String(Buffer.byteLength(body)) };
          res.writeHead(200, headers).end(body);
        });
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const sockets = trackSockets(server);
  const origin = await listenOnLoopback(server);
  const rewriter: TokenRewriter = {
    origin,
    setTarget(t) {
      target = new URL(t);
    },
    edit: undefined,
    get edited() {
      return edited;
    },
    close: () => closeServer(server, sockets),
  };
  return rewriter;
}
