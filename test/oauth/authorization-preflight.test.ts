/**
 * The preflight's verdicts against a small authorization endpoint on 127.0.0.1 that answers
 * as real ones do (oidc-provider's own answers are in forgotten-client.test.ts).
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';

import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';
import { preflightAuthorization } from '../../src/oauth/authorization-preflight.js';

const REDIRECT_URI = 'http://127.0.0.1:53682/callback';

describe('authorization endpoint preflight', () => {
  let origin: string;
  let close: () => Promise<void>;
  let endless = 0;
  const answers = new Map<string, (res: ServerResponse) => void>([
    // better-auth and many others: a redirect to the AS's own error page.
    ['/error-page', (res) => res.writeHead(302, { location: '/api/auth/error?error=invalid_client' }).end()],
    ['/login-page', (res) => res.writeHead(302, { location: '/login?next=%2Fauthorize%3Ferror%3Dx' }).end()],
    [
      '/back-to-us',
      (res) => res.writeHead(302, { location: `${REDIRECT_URI}?error=invalid_client&state=s` }).end(),
    ],
    ['/in-place', (res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<form>sign in</form>')],
    ['/html-400', (res) => res.writeHead(400, { 'content-type': 'text/html' }).end('<h1>oops</h1>')],
    [
      '/filter-403',
      (res) => res.writeHead(403, { 'content-type': 'text/html' }).end('<h1>are you human?</h1>'),
    ],
    ['/json-403', (res) => res.writeHead(403).end('{"error":"unauthorized_client"}')],
    ['/down', (res) => res.writeHead(503).end()],
    [
      '/endless-400',
      (res) => {
        // A body that never ends: the preflight must stop reading on its own.
        res.writeHead(400, { 'content-type': 'text/html' });
        const chunk = Buffer.alloc(16 * 1024, 'x');
        const pump = (): void => {
          while (!res.destroyed) {
            endless++;
            if (!res.write(chunk)) break;
          }
          if (!res.destroyed) res.once('drain', pump);
        };
        pump();
      },
    ],
  ]);

  before(async () => {
    const server = createServer((req, res) => {
      const answer = answers.get(new URL(req.url ?? '/', 'http://x').pathname);
      if (answer === undefined) res.writeHead(404).end();
      else answer(res);
    });
    const sockets = trackSockets(server);
    origin = await listenOnLoopback(server);
    close = () => closeServer(server, sockets);
  });
  after(() => close());

  const at = (path: string): string => {
    const url = new URL(path, origin);
    url.searchParams.set('client_id', 'c');
    url.searchParams.set('redirect_uri', REDIRECT_URI);
    return url.href;
  };

  it('a redirect to the AS error page with a client error is refused', async () => {
    assert.deepEqual(await preflightAuthorization(at('/error-page')), {
      kind: 'refused',
      status: 302,
      error: 'invalid_client',
    });
  });

  it('a redirect to a login page, or back to our redirect URI, is accepted', async () => {
    assert.equal((await preflightAuthorization(at('/login-page'))).kind, 'accepted');
    assert.equal((await preflightAuthorization(at('/back-to-us'))).kind, 'accepted');
  });

  it('a login page rendered in place is accepted', async () => {
    assert.deepEqual(await preflightAuthorization(at('/in-place')), { kind: 'accepted', status: 200 });
  });

  it('400 is refused; another 4xx only when it names a client error', async () => {
    assert.deepEqual(await preflightAuthorization(at('/html-400')), { kind: 'refused', status: 400 });
    assert.equal((await preflightAuthorization(at('/filter-403'))).kind, 'unknown');
    assert.deepEqual(await preflightAuthorization(at('/json-403')), {
      kind: 'refused',
      status: 403,
      error: 'unauthorized_client',
    });
  });

  it('5xx and an unreachable AS are inconclusive: the browser gets its chance', async () => {
    assert.equal((await preflightAuthorization(at('/down'))).kind, 'unknown');
    const unreachable = await preflightAuthorization('http://127.0.0.1:9/authorize?client_id=c');
    assert.equal(unreachable.kind, 'unknown');
  });

  it('an endless error body is read only up to its bound', async () => {
    assert.deepEqual(await preflightAuthorization(at('/endless-400')), { kind: 'refused', status: 400 });
    assert.ok(endless > 0, 'the server was streaming when the preflight stopped reading');
  });
});
