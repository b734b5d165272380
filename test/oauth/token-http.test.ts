/**
 * The refresher's token fetch (src/oauth/token-http.ts) against a real node:http server on
 * loopback: answers read whole and handed on without a second read, the size cap kept
 * (declared and streamed, through bounded-fetch's own refusal), compressed answers decoded,
 * fetch's failure shapes, kept-alive connections, and the ID-token retry from the bytes.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';

import * as oauth from 'oauth4webapi';

import { ErrorCode, isLatchkeyError } from '../../src/errors.js';
import { boundedFetch } from '../../src/oauth/bounded-fetch.js';
import { processTokenResponse } from '../../src/oauth/grants.js';
import { bufferedCopy, createTokenFetch } from '../../src/oauth/token-http.js';

const LIMIT = 1024;
const TOKEN = { access_token: 'at', token_type: 'Bearer', expires_in: 60, refresh_token: 'rt' };

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

describe('token fetch on node:http', () => {
  let server: Server;
  let base: string;
  let handler: Handler = () => undefined;
  const sockets = new Set<unknown>();

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => handler(req, res, body));
    });
    server.on('connection', (socket) => sockets.add(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const json =
    (status: number, body: unknown): Handler =>
    (_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };

  it('posts the form, reads the answer whole, and bounded-fetch passes it on without a second read', async () => {
    let seen: { method?: string; type?: string; body?: string } = {};
    handler = (req, res, body) => {
      seen = { method: req.method ?? '', type: req.headers['content-type'] ?? '', body };
      json(200, TOKEN)(req, res, body);
    };
    const tokenFetch = createTokenFetch(LIMIT);
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'r1' });
    const capped = boundedFetch(tokenFetch, { limit: LIMIT, what: 'authorization server response' });
    const response = await capped(`${base}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
    });
    assert.deepEqual(seen, {
      method: 'POST',
      type: 'application/x-www-form-urlencoded',
      body: form.toString(),
    });
    assert.ok(bufferedCopy(response, LIMIT) !== undefined, 'the same Response, not a re-read copy');
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/json');
    assert.deepEqual(await response.json(), TOKEN);
  });

  for (const [how, send] of [
    [
      'declared',
      (res: ServerResponse) => res.writeHead(200, { 'content-length': LIMIT * 4 }).end('x'.repeat(LIMIT * 4)),
    ],
    [
      'streamed',
      (res: ServerResponse) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('x'.repeat(LIMIT));
        setTimeout(() => res.end('x'.repeat(LIMIT)), 10);
      },
    ],
    [
      'gzip-decoded',
      (res: ServerResponse) =>
        res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync('x'.repeat(LIMIT * 50))),
    ],
  ] as const) {
    it(`an answer over the limit (${how}) is refused with RESPONSE_TOO_LARGE`, async () => {
      handler = (_req, res) => send(res);
      const capped = boundedFetch(createTokenFetch(LIMIT), {
        limit: LIMIT,
        what: 'authorization server response',
        server: 'https://mcp.example.com',
      });
      await assert.rejects(capped(`${base}/token`, { method: 'POST', body: 'a=b' }), (error) => {
        assert.ok(isLatchkeyError(error), String(error));
        assert.equal(error.code, ErrorCode.RESPONSE_TOO_LARGE);
        return true;
      });
    });
  }

  it('decodes a gzip answer within the limit', async () => {
    handler = (_req, res) =>
      res
        .writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'application/json' })
        .end(gzipSync(JSON.stringify(TOKEN)));
    const response = await createTokenFetch(LIMIT)(`${base}/token`, { method: 'POST', body: 'a=b' });
    assert.equal(response.headers.get('content-encoding'), null);
    assert.deepEqual(await response.json(), TOKEN);
  });

  it("keeps fetch's failure shapes: a TypeError with the system error, the signal's reason on abort", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(
      createTokenFetch(LIMIT)(`http://127.0.0.1:${port}/token`, { method: 'POST', body: 'a=b' }),
      (error) => {
        assert.ok(error instanceof TypeError);
        assert.equal((error.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
        return true;
      },
    );
    handler = () => undefined; // never answers
    const reason = new Error('request timed out');
    const controller = new AbortController();
    setTimeout(() => controller.abort(reason), 50);
    await assert.rejects(
      createTokenFetch(LIMIT)(`${base}/token`, { method: 'POST', body: 'a=b', signal: controller.signal }),
      (error) => error === reason,
    );
  });

  it('sends request after request on one kept-alive connection', async () => {
    handler = json(200, TOKEN);
    const tokenFetch = createTokenFetch(LIMIT);
    const before = sockets.size;
    for (let i = 0; i < 5; i++)
      await (await tokenFetch(`${base}/token`, { method: 'POST', body: 'a=b' })).json();
    assert.equal(sockets.size - before, 1);
  });

  it('an ID token that fails validation is dropped using a copy made from the bytes', async () => {
    const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const input = `${b64({ alg: 'HS256' })}.${b64({ sub: 'u', aud: 'c', iat: now, exp: now + 60 })}`;
    const idToken = `${input}.${createHmac('sha256', 'k').update(input).digest('base64url')}`;
    handler = json(200, { ...TOKEN, id_token: idToken });
    const as: oauth.AuthorizationServer = {
      issuer: base,
      token_endpoint: `${base}/token`,
      id_token_signing_alg_values_supported: ['RS256'],
    };
    const response = await createTokenFetch(LIMIT)(`${base}/token`, { method: 'POST', body: 'a=b' });
    assert.ok(bufferedCopy(response) !== undefined, 'read whole: the spare copy comes from its bytes');
    const warnings: string[] = [];
    const result = await processTokenResponse({ warn: (t) => warnings.push(t) }, response, (r) =>
      oauth.processRefreshTokenResponse(as, { client_id: 'c' }, r),
    );
    assert.equal(result.access_token, 'at');
    assert.equal(result.id_token, undefined);
    assert.equal(warnings.length, 1);
  });
});
