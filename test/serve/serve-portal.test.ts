// The portal page of latchkey serve, in headless Chromium against the real oidc-provider AS,
// the real MCP server and a real SQLite store (PostgreSQL with LATCHKEY_TEST_STORE=postgres):
// the app asks for a portal link, a person opens it, connects through the AS's own pages and
// disconnects. Screenshots go to test-results/serve-portal/ (gitignored).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium, type Browser, type Page } from 'playwright-core';

import { createLogger } from '../../src/log.js';
import { createAppKey } from '../../src/serve/app-keys.js';
import { startServe, type RunningServe } from '../../src/serve/server.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { hasServeTables, type ServeStore } from '../../src/store/serve-contract.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import {
  completeAuthorization,
  startAuthorizationServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { freshDatabase, type TestDatabase, testStoreKind } from '../support/postgres.js';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const SHOTS = join(process.cwd(), 'test-results', 'serve-portal');

/** A browser-less visitor: the session cookie and the page's CSRF token, taken from real answers. */
interface Visitor {
  cookie: string;
  csrf: string;
}

describe('latchkey serve: the portal page', { skip: skipReason() }, () => {
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  let home: string;
  let database: TestDatabase | undefined;
  const stores: ServeStore[] = [];
  let serve: RunningServe;
  let key: string;
  let browser: Browser;
  let attacker: Server;
  let attackerHtml = '';
  const logLines: string[] = [];
  const secretsSeen: string[] = [];

  async function openStore(): Promise<ServeStore> {
    const env = { LATCHKEY_KEY: process.env['SERVE_PORTAL_TEST_KEY'] ?? '' };
    const store =
      database === undefined
        ? await openSqliteStore({ home, env })
        : await openPostgresStore({ url: database.url, env });
    assert.ok(hasServeTables(store));
    stores.push(store);
    return store;
  }

  async function instance(options: { portalLinkTtlMs?: number; portalSessionTtlMs?: number } = {}) {
    return startServe({
      store: await openStore(),
      upstreams: [{ id: 'demo', url: mcp.url }],
      listen: { host: '127.0.0.1', port: 0 },
      refresher: false,
      logger: createLogger({ level: 'silent' }),
      ...options,
    });
  }

  before(async () => {
    process.env['SERVE_PORTAL_TEST_KEY'] = randomBytes(32).toString('base64');
    as = await startAuthorizationServer({ accessTokenTtl: 300 });
    mcp = await startMcpServer({ authorizationServer: as, requiredScopes: ['mcp:tools'] });
    home = await mkdtemp(join(tmpdir(), 'latchkey-serve-portal-'));
    if (testStoreKind() === 'postgres') database = await freshDatabase();
    const store = await openStore();
    key = (await createAppKey(store, 'portal test')).key;
    serve = await startServe({
      store,
      upstreams: [{ id: 'demo', url: mcp.url }],
      listen: { host: '127.0.0.1', port: 0 },
      refresher: false,
      logger: createLogger({ level: 'debug', format: 'json', write: (line) => logLines.push(line) }),
    });
    // Another origin on the same site (same host, another port): SameSite=Lax still sends
    // the cookie from here, so only the Origin check and the CSRF token stand in the way.
    attacker = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(attackerHtml);
    });
    await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-sync',
      ],
    });
    await mkdir(SHOTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    attacker?.close();
    await serve?.close();
    for (const store of stores) await store.close();
    await mcp?.close();
    await as?.close();
    await rm(home, { recursive: true, force: true });
    await database?.drop();
  });

  async function portalLink(
    subject: string,
    base = serve.url,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${base}/v1/subjects/${subject}/portal`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
    });
    const body = (await response.json()) as Record<string, unknown>;
    if (typeof body['portal_url'] === 'string')
      secretsSeen.push(new URL(body['portal_url']).searchParams.get('ticket') ?? '');
    return { status: response.status, body };
  }

  async function token(subject: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${serve.url}/v1/subjects/${subject}/connections/demo/token`, {
      headers: { authorization: `Bearer ${key}` },
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  /** Open a portal link without a browser, and read the page for its CSRF token. */
  async function visit(subject: string): Promise<Visitor> {
    const link = await portalLink(subject);
    const opened = await fetch(String(link.body['portal_url']), { redirect: 'manual' });
    assert.equal(opened.status, 303);
    const cookie = (opened.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    secretsSeen.push(cookie.split('=')[1] ?? '');
    const page = await fetch(`${serve.url}/`, { headers: { cookie } });
    const csrf = /name="csrf" value="([^"]+)"/.exec(await page.text())?.[1];
    assert.ok(csrf !== undefined, 'the page holds a CSRF token');
    return { cookie, csrf };
  }

  async function post(
    path: string,
    visitor: { cookie?: string; csrf?: string },
    origin: string | null = serve.url,
  ): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (visitor.cookie !== undefined) headers['cookie'] = visitor.cookie;
    if (origin !== null) headers['origin'] = origin;
    return fetch(`${serve.url}${path}`, {
      method: 'POST',
      headers,
      body: new URLSearchParams(visitor.csrf === undefined ? {} : { csrf: visitor.csrf }).toString(),
      redirect: 'manual',
    });
  }

  async function connectByApi(subject: string, asUser: string): Promise<void> {
    const started = await fetch(`${serve.url}/v1/subjects/${subject}/connections/demo`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ return_to: 'https://app.example.com/' }),
    });
    const body = (await started.json()) as { authorization_url: string };
    const callback = await completeAuthorization(body.authorization_url, { subject: asUser });
    assert.equal((await fetch(callback, { redirect: 'manual' })).status, 303);
  }

  async function shot(page: Page, name: string): Promise<void> {
    const path = join(SHOTS, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    assert.ok(existsSync(path) && statSync(path).size > 1000, `screenshot ${name} taken`);
  }

  it('a person opens the link, connects at the AS, sees it connected, then disconnects: both tokens revoked', async () => {
    const link = await portalLink('alice');
    assert.equal(link.status, 201);
    const portalUrl = new URL(String(link.body['portal_url']));
    assert.equal(`${portalUrl.origin}${portalUrl.pathname}`, `${serve.publicUrl}/portal/open`);
    const expiresAt = Date.parse(String(link.body['expires_at']));
    assert.ok(Math.abs(expiresAt - (Date.now() + 300_000)) < 30_000, 'the link lives 5 minutes');

    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      const landed = await page.goto(portalUrl.href);
      assert.equal(page.url(), `${serve.publicUrl}/`, 'the link redirects to the page');
      const headers = landed?.headers() ?? {};
      assert.match(
        headers['content-security-policy'] ?? '',
        /^default-src 'none'; style-src 'sha256-[^']+'; form-action 'self'/,
      );
      assert.equal(headers['x-frame-options'], 'DENY');
      assert.equal(headers['referrer-policy'], 'same-origin');
      assert.equal(headers['cache-control'], 'no-store');
      const [cookie] = await context.cookies();
      assert.equal(cookie?.name, 'latchkey_portal', 'http public URL: no __Host- prefix possible');
      assert.equal(cookie?.httpOnly, true);
      assert.equal(cookie?.sameSite, 'Lax');
      assert.ok(
        Math.abs((cookie?.expires ?? 0) * 1000 - (Date.now() + 3_600_000)) < 60_000,
        'a 1-hour session',
      );
      const demo = page.locator('section[data-upstream="demo"]');
      assert.equal(await demo.getAttribute('data-state'), 'none');
      assert.match((await demo.textContent()) ?? '', /Not connected/);
      await shot(page, '1-signed-in');

      await demo.locator('button', { hasText: 'Connect' }).click();
      await page.waitForSelector('input[name="login"]');
      assert.ok(page.url().startsWith(as.issuer), 'at the AS sign-in page');
      await shot(page, '2-as-login');
      await page.fill('input[name="login"]', 'alice-at-as');
      await page.fill('input[name="password"]', 'test');
      await page.click('button[type="submit"]');
      await page.waitForSelector('button[type="submit"]');
      await page.click('button[type="submit"]');
      await page.waitForSelector('section[data-upstream="demo"][data-state="connected"]');
      assert.ok(page.url().startsWith(`${serve.publicUrl}/?`), 'back on the page');
      assert.equal(await page.textContent('.notice'), 'Connected to demo.');
      assert.match(
        (await demo.textContent()) ?? '',
        /Connected — Working\..*Access expires \d{4}-\d\d-\d\d \d\d:\d\d UTC/,
      );
      await shot(page, '3-connected');

      const got = await token('alice');
      assert.equal(got.status, 200);
      assert.equal((await as.introspect(String(got.body['access_token']))).sub, 'alice-at-as');
      const held = (await stores[0]?.listCredentials({ subject: 'alice' }))?.[0];
      assert.ok(held?.secrets.refreshToken !== undefined);

      const revocations = as.counters.count('revocation', 'ok');
      await demo.locator('button', { hasText: 'Disconnect' }).click();
      await page.waitForSelector('section[data-upstream="demo"][data-state="none"]');
      assert.equal(await page.textContent('.notice'), 'Disconnected from demo.');
      await shot(page, '4-disconnected');
      assert.equal(as.counters.count('revocation', 'ok') - revocations, 2);
      assert.equal((await as.introspect(held.secrets.accessToken)).active, false, 'access token revoked');
      assert.equal((await as.introspect(held.secrets.refreshToken)).active, false, 'refresh token revoked');
      assert.equal((await token('alice')).status, 409);
    } finally {
      await context.close();
    }
  });

  it('a connection the AS refused shows as needs-login with its error, and "Sign in again" restores it', async () => {
    as.setAccessTokenTtl(2);
    try {
      await connectByApi('lena', 'lena-at-as');
    } finally {
      as.setAccessTokenTtl(300);
    }
    await as.revokeGrants('lena-at-as');
    await new Promise((resolve) => setTimeout(resolve, 2_100)); // the 2-s token is now unusable
    assert.equal((await token('lena')).status, 409, 'the refresh was refused');

    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(String((await portalLink('lena')).body['portal_url']));
      const demo = page.locator('section[data-upstream="demo"]');
      assert.equal(await demo.getAttribute('data-state'), 'needs-login');
      const text = (await demo.textContent()) ?? '';
      assert.match(text, /Needs login — The server no longer accepts this connection: sign in again\./);
      assert.match(text, /Access expired \d{4}-\d\d-\d\d \d\d:\d\d UTC\./);
      assert.match(text, /Last error \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\): .+LOGIN_REQUIRED/);
      await shot(page, '6-needs-login');
      await demo.locator('button', { hasText: 'Sign in again' }).click();
      await page.waitForSelector('input[name="login"]');
      await page.fill('input[name="login"]', 'lena-at-as');
      await page.fill('input[name="password"]', 'test');
      await page.click('button[type="submit"]');
      await page.waitForSelector('button[type="submit"]');
      await page.click('button[type="submit"]');
      await page.waitForSelector('section[data-upstream="demo"][data-state="connected"]');
      await shot(page, '7-reconnected');
      const got = await token('lena');
      assert.equal(got.status, 200, 'connected again');
      assert.equal((await as.introspect(String(got.body['access_token']))).sub, 'lena-at-as');
    } finally {
      await context.close();
    }
  });

  it('a portal link is single use, expires, and is only given for an app key', async () => {
    const link = String((await portalLink('gina')).body['portal_url']);
    assert.equal((await fetch(link, { redirect: 'manual' })).status, 303);
    const reused = await fetch(link, { redirect: 'manual' });
    assert.equal(reused.status, 400, 'reused');
    assert.equal(reused.headers.get('set-cookie'), null);
    assert.match(await reused.text(), /expired or was already used/);

    const short = await instance({ portalLinkTtlMs: 1 });
    try {
      const stale = String((await portalLink('gina', short.url)).body['portal_url']);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const expired = await fetch(stale, { redirect: 'manual' });
      assert.equal(expired.status, 400, 'expired');
      assert.equal(expired.headers.get('set-cookie'), null);
    } finally {
      await short.close();
    }
    const forged = await fetch(`${serve.url}/portal/open?ticket=${randomBytes(32).toString('base64url')}`, {
      redirect: 'manual',
    });
    assert.equal(forged.status, 400);
    const keyless = await fetch(`${serve.url}/v1/subjects/gina/portal`, { method: 'POST' });
    assert.equal(keyless.status, 401);
    const badSubject = await portalLink('gi%20na');
    assert.equal(badSubject.status, 400);
  });

  it('without a session, or once it expired, the page only says to open it from the app', async () => {
    const none = await fetch(`${serve.url}/`);
    assert.equal(none.status, 401);
    const text = await none.text();
    assert.match(text, /Open this page again from the application/);
    assert.ok(!text.includes('<form'), 'no actions without a session');

    const short = await instance({ portalSessionTtlMs: 50 });
    try {
      const link = String((await portalLink('hana', short.url)).body['portal_url']);
      const opened = await fetch(link, { redirect: 'manual' });
      const cookie = (opened.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      assert.equal((await fetch(`${short.url}/`, { headers: { cookie } })).status, 200);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal((await fetch(`${short.url}/`, { headers: { cookie } })).status, 401, 'expired session');
    } finally {
      await short.close();
    }
  });

  it('a cross-origin POST from Chromium, a forged CSRF token, or no Origin is refused', async () => {
    await connectByApi('ivan', 'ivan-at-as');
    const ivan = await visit('ivan');
    const path = '/portal/connections/demo/disconnect';
    // Even holding ivan's real token, a page of another origin cannot post for him.
    const context = await browser.newContext();
    try {
      await context.addCookies([
        {
          name: 'latchkey_portal',
          value: ivan.cookie.split('=')[1] ?? '',
          url: serve.url,
          httpOnly: true,
          sameSite: 'Lax',
        },
      ]);
      const page = await context.newPage();
      attackerHtml = `<form method="post" action="${serve.url}${path}"><input type="hidden" name="csrf" value="${ivan.csrf}"><button>win a prize</button></form>`;
      const address = attacker.address() as { port: number };
      await page.goto(`http://127.0.0.1:${address.port}/`);
      const [answer] = await Promise.all([page.waitForNavigation(), page.click('button')]);
      assert.equal(answer?.status(), 403, 'cross-origin form POST refused');
      await shot(page, '5-cross-origin-refused');
    } finally {
      await context.close();
    }
    const forged = await post(path, { cookie: ivan.cookie, csrf: randomBytes(32).toString('base64url') });
    assert.equal(forged.status, 403, 'forged CSRF token');
    assert.equal((await post(path, { cookie: ivan.cookie })).status, 403, 'no CSRF token');
    assert.equal((await post(path, ivan, null)).status, 403, 'no Origin');
    assert.equal((await post(path, ivan, 'null')).status, 403, 'opaque Origin');
    assert.equal((await post(path, ivan, 'http://evil.example')).status, 403, 'foreign Origin');
    assert.equal((await post(path, { csrf: ivan.csrf })).status, 401, 'no cookie');
    assert.equal((await token('ivan')).status, 200, 'ivan is still connected after all of it');

    const done = await post(path, ivan);
    assert.equal(done.status, 303, 'the real page can');
    assert.match(done.headers.get('location') ?? '', /latchkey_status=disconnected/);
    assert.equal((await token('ivan')).status, 409);
  });

  it("one user's session cannot see, use or revoke another user's connection", async () => {
    await connectByApi('bob', 'bob-at-as');
    const bobToken = String((await token('bob')).body['access_token']);
    const anna = await visit('anna');
    const bob = await visit('bob');
    const annaPage = await (await fetch(`${serve.url}/`, { headers: { cookie: anna.cookie } })).text();
    assert.match(annaPage, /data-state="none"/, "anna sees demo as not connected, not bob's connection");
    const bobPage = await (await fetch(`${serve.url}/`, { headers: { cookie: bob.cookie } })).text();
    assert.match(bobPage, /data-state="connected"/);

    const path = '/portal/connections/demo/disconnect';
    const annaTries = await post(path, anna);
    assert.equal(annaTries.status, 303);
    assert.match(
      annaTries.headers.get('location') ?? '',
      /latchkey_error=not_connected/,
      'acts on anna only',
    );
    // Bob's token with anna's cookie, anna's token with bob's cookie: refused both ways.
    assert.equal((await post(path, { cookie: anna.cookie, csrf: bob.csrf })).status, 403);
    assert.equal((await post(path, { cookie: bob.cookie, csrf: anna.csrf })).status, 403);
    // No parameter names a subject: a query naming bob changes nothing.
    assert.equal((await post(`${path}?subject=bob`, anna)).status, 303);
    const still = await token('bob');
    assert.equal(still.status, 200);
    assert.equal(still.body['access_token'], bobToken);
    assert.equal((await as.introspect(bobToken)).active, true, "bob's token is untouched at the AS");
    // Connect from anna's session starts a flow for anna, whoever signs in at the AS.
    const connect = await post('/portal/connections/demo/connect', anna);
    assert.equal(connect.status, 200);
    const target = /http-equiv="refresh" content="0;url=([^"]+)"/.exec(await connect.text())?.[1];
    assert.ok(target !== undefined);
    const callback = await completeAuthorization(target.replaceAll('&#38;', '&'), {
      subject: 'someone-at-as',
    });
    const back = await fetch(callback, { redirect: 'manual' });
    assert.equal(new URL(back.headers.get('location') ?? '').pathname, '/');
    assert.equal(
      (await as.introspect(String((await token('anna')).body['access_token']))).sub,
      'someone-at-as',
    );
    assert.equal((await token('bob')).body['access_token'], bobToken, "bob's connection is still his");
  });

  it('escapes what it shows, and its notice only names configured upstreams', async () => {
    const visitor = await visit('jill');
    const hostile = '<script>alert(1)</script>';
    const query = new URLSearchParams({
      latchkey_status: 'error',
      latchkey_upstream: 'demo',
      latchkey_error: hostile,
    });
    const page = await (
      await fetch(`${serve.url}/?${query}`, { headers: { cookie: visitor.cookie } })
    ).text();
    assert.ok(!page.includes(hostile));
    assert.ok(page.includes('&#60;script&#62;alert(1)&#60;/script&#62;'));
    const unknown = new URLSearchParams({ latchkey_status: 'connected', latchkey_upstream: 'evil' });
    const other = await (
      await fetch(`${serve.url}/?${unknown}`, { headers: { cookie: visitor.cookie } })
    ).text();
    assert.ok(!other.includes('class="notice'), 'no notice for an upstream that is not configured');
  });

  it('signing out ends the session on every instance', async () => {
    const visitor = await visit('kim');
    const second = await instance();
    try {
      assert.equal(
        (await fetch(`${second.url}/`, { headers: { cookie: visitor.cookie } })).status,
        200,
        'any instance serves the session',
      );
      const out = await post('/portal/sign-out', visitor);
      assert.equal(out.status, 200);
      assert.match(out.headers.get('set-cookie') ?? '', /Max-Age=0/);
      assert.equal((await fetch(`${second.url}/`, { headers: { cookie: visitor.cookie } })).status, 401);
    } finally {
      await second.close();
    }
  });

  it('the log holds no ticket, cookie or token', () => {
    const all = logLines.join('\n');
    assert.ok(logLines.some((l) => l.includes('"path":"/portal/open"')));
    for (const secret of secretsSeen.filter((s) => s.length > 8)) {
      assert.ok(!all.includes(secret), `a secret leaked into the log: ${secret.slice(0, 6)}…`);
    }
  });
});

function skipReason(): string | false {
  if (existsSync(CHROMIUM)) return false;
  if (process.env['LATCHKEY_TEST_NO_BROWSER'] === '1')
    return `no Chromium at ${CHROMIUM} (LATCHKEY_TEST_NO_BROWSER=1)`;
  return false; // run, and fail loudly: CI must provide Chromium
}
