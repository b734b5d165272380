/**
 * The body caps on a real HTTP server on 127.0.0.1: exactly the limit passes, one byte more
 * does not, a Content-Length over the limit is refused before the body is read, and a body
 * without a length is read only until the limit.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';

import { ErrorCode, isLatchkeyError } from '../../src/errors.js';
import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';
import { boundedFetch, streamCappedFetch } from '../../src/oauth/bounded-fetch.js';

const LIMIT = 1000;

describe('boundedFetch', () => {
  let origin: string;
  let close: () => Promise<void>;
  /** Bytes the server managed to write for /lying (declares 50 MB). */
  let lyingWritten = 0;

  before(async () => {
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const size = Number(url.searchParams.get('size') ?? '0');
      if (url.pathname === '/lying') {
        res.writeHead(200, { 'content-length': String(50_000_000) });
        const write = (): void => {
          while (!res.destroyed && lyingWritten < 50_000_000) {
            lyingWritten += 64 * 1024;
            if (!res.write(Buffer.alloc(64 * 1024, 'a'))) return void res.once('drain', write);
          }
        };
        write();
        return;
      }
      if (url.pathname === '/events') {
        // `count` events of `size` bytes of data each, in 7-byte writes so that blank lines
        // fall across chunk boundaries.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const text = `data: ${'e'.repeat(size)}\n\n`.repeat(Number(url.searchParams.get('count') ?? '1'));
        for (let at = 0; at < text.length; at += 7) res.write(text.slice(at, at + 7));
        res.end();
        return;
      }
      const chunked = url.pathname === '/chunked';
      res.writeHead(200, chunked ? {} : { 'content-length': String(size) });
      res.end(Buffer.alloc(size, 'b'));
    });
    const sockets = trackSockets(server);
    origin = await listenOnLoopback(server);
    close = () => closeServer(server, sockets);
  });
  after(async () => {
    await close();
  });

  const capped = boundedFetch(undefined, {
    limit: LIMIT,
    what: 'test document',
    server: 'https://mcp.test/',
  });

  it('passes a body of exactly the limit, with or without a length', async () => {
    for (const path of ['/sized', '/chunked']) {
      const response = await capped(`${origin}${path}?size=${LIMIT}`);
      assert.equal((await response.text()).length, LIMIT);
    }
  });

  it('refuses one byte more, chunked or declared, with RESPONSE_TOO_LARGE naming the server', async () => {
    for (const path of ['/sized', '/chunked']) {
      await assert.rejects(capped(`${origin}${path}?size=${LIMIT + 1}`), (error) => {
        assert.ok(isLatchkeyError(error));
        assert.equal(error.code, ErrorCode.RESPONSE_TOO_LARGE);
        assert.equal(error.server, 'https://mcp.test/');
        assert.equal(error.retryable, false);
        assert.match(error.message, /the test document from 127\.0\.0\.1:\d+ .* past the 1000-byte limit/);
        return true;
      });
    }
  });

  it('refuses a Content-Length over the limit without reading the body', async () => {
    await assert.rejects(capped(`${origin}/lying`), /declares 50000000 bytes past the 1000-byte limit/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(lyingWritten < 50_000_000, `the server wrote ${lyingWritten} bytes`);
  });

  const streaming = streamCappedFetch(globalThis.fetch, { limit: LIMIT, what: 'MCP answer' });

  it('streamCappedFetch: an event stream may carry any number of events under the limit', async () => {
    const text = await (await streaming(`${origin}/events?size=${LIMIT - 20}&count=50`)).text();
    assert.equal(text.length, 50 * (LIMIT - 20 + 8));
  });

  it('streamCappedFetch: one event over the limit fails the stream with RESPONSE_TOO_LARGE', async () => {
    const response = await streaming(`${origin}/events?size=${LIMIT + 10}&count=2`);
    await assert.rejects(response.text(), (error) => {
      assert.ok(isLatchkeyError(error));
      assert.equal(error.code, ErrorCode.RESPONSE_TOO_LARGE);
      return true;
    });
  });

  it('streamCappedFetch: a JSON body is limited as a whole', async () => {
    assert.equal((await (await streaming(`${origin}/chunked?size=${LIMIT}`)).text()).length, LIMIT);
    const response = await streaming(`${origin}/chunked?size=${LIMIT * 3}`);
    await assert.rejects(response.text(), /went on past the 1000-byte limit/);
  });
});
