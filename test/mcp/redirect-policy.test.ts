import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { isLatchkeyError } from '../../src/errors.js';
import { MAX_REDIRECTS, sameOriginRedirects } from '../../src/mcp/redirect-policy.js';

interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A server whose paths are redirect rules: `/r/<status>?to=<url>` answers <status> to `to`. */
async function start(): Promise<{ origin: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
      const url = new URL(req.url ?? '/', 'http://x');
      const match = /^\/r\/(\d{3})$/.exec(url.pathname);
      if (match !== null) {
        res.writeHead(Number(match[1]), { location: url.searchParams.get('to') ?? '/' }).end();
        return;
      }
      if (url.pathname === '/loop') {
        res.writeHead(302, { location: '/loop' }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`${req.method} ${url.pathname} ${body}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

describe('redirect policy: within the origin only', () => {
  let home: Awaited<ReturnType<typeof start>>;
  let away: Awaited<ReturnType<typeof start>>;
  let fetchIt: typeof fetch;
  const SERVER = 'http://127.0.0.1:1/mcp';
  before(async () => {
    home = await start();
    away = await start();
    fetchIt = sameOriginRedirects(SERVER);
  });
  after(() => {
    home.server.close();
    away.server.close();
  });

  async function refusal(promise: Promise<unknown>): Promise<string> {
    try {
      await promise;
    } catch (error) {
      assert.ok(isLatchkeyError(error), String(error));
      assert.equal(error.code, 'MCP_FAILED');
      assert.equal(error.server, SERVER);
      assert.equal(error.retryable, false);
      return error.message;
    }
    assert.fail('expected a refusal');
  }

  it('307 within the origin: the same method, body and headers (credentials included) go along', async () => {
    const response = await fetchIt(`${home.origin}/r/307?to=/target`, {
      method: 'POST',
      headers: { authorization: 'Bearer same-origin', 'x-tenant': 't1', 'content-type': 'text/plain' },
      body: 'payload',
    });
    assert.equal(await response.text(), 'POST /target payload');
    const last = home.seen.at(-1);
    assert.equal(last?.headers['authorization'], 'Bearer same-origin');
    assert.equal(last?.headers['x-tenant'], 't1');
  });

  it('303 after POST within the origin becomes a bodiless GET without body headers', async () => {
    const response = await fetchIt(`${home.origin}/r/303?to=/after`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    assert.equal(await response.text(), 'GET /after ');
    assert.equal(home.seen.at(-1)?.headers['content-type'], undefined);
  });

  for (const status of [301, 302, 303, 307, 308]) {
    it(`${status} to another origin is refused; nothing arrives there`, async () => {
      const before = away.seen.length;
      const message = await refusal(
        fetchIt(`${home.origin}/r/${status}?to=${encodeURIComponent(`${away.origin}/steal`)}`, {
          method: 'POST',
          headers: { authorization: 'Bearer secret-token', 'x-api-key': 'k' },
          body: 'x',
        }),
      );
      assert.match(message, new RegExp(`another origin \\(${away.origin.replace(/[.]/g, '\\.')}\\)`));
      assert.doesNotMatch(message, /secret-token/);
      assert.equal(away.seen.length, before);
    });
  }

  it('a cross-origin hop after a same-origin one is refused too', async () => {
    const before = away.seen.length;
    const inner = `/r/302?to=${encodeURIComponent(`${away.origin}/x`)}`;
    await refusal(fetchIt(`${home.origin}/r/302?to=${encodeURIComponent(inner)}`));
    assert.equal(away.seen.length, before);
  });

  it('non-http locations (javascript:, file:) are another origin: refused', async () => {
    for (const to of ['javascript:alert(1)', 'file:///etc/passwd']) {
      const message = await refusal(fetchIt(`${home.origin}/r/302?to=${encodeURIComponent(to)}`));
      assert.match(message, new RegExp(`another origin \\(a ${to.split(':')[0]}: URL\\)`));
      assert.doesNotMatch(message, /alert|passwd/);
    }
  });

  it("redirect: 'manual' (the MCP SDK's mode): a same-origin 3xx is returned, a cross-origin one refused", async () => {
    const same = await fetchIt(`${home.origin}/r/307?to=/next`, { redirect: 'manual' });
    assert.equal(same.status, 307);
    assert.equal(same.headers.get('location'), '/next');
    const before = away.seen.length;
    await refusal(
      fetchIt(`${home.origin}/r/307?to=${encodeURIComponent(`${away.origin}/x`)}`, { redirect: 'manual' }),
    );
    assert.equal(away.seen.length, before);
  });

  it(`more than ${MAX_REDIRECTS} redirects within the origin end with an error`, async () => {
    const message = await refusal(fetchIt(`${home.origin}/loop`));
    assert.match(message, /more than 20 times/);
  });

  it('a Request input is followed with its method, headers and body', async () => {
    const response = await fetchIt(
      new Request(`${home.origin}/r/308?to=/req`, { method: 'PUT', headers: { 'x-a': 'b' }, body: 'r' }),
    );
    assert.equal(await response.text(), 'PUT /req r');
    assert.equal(home.seen.at(-1)?.headers['x-a'], 'b');
  });
});
