// What the portal tests share: the serve stack of serve-env.ts (the real oidc-provider AS, the
// real MCP server, a real store: SQLite, or PostgreSQL with LATCHKEY_TEST_STORE=postgres), headless
// Chromium, and a page of another origin on the same site. Screenshots go to
// test-results/serve-portal/ (gitignored).
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import type { Browser, Page } from 'playwright-core';

import type { RunningServe } from '../../src/serve/server.js';
import type { ServeStore } from '../../src/store/serve-contract.js';
import type { TestAuthorizationServer, TestMcpServer } from '../harness/index.js';
import { launchChromium } from '../support/chromium.js';
import { startServeEnv } from './serve-env.js';

// The serve tests (and test/fleet) take Chromium's path and the skip rule from here.
export { CHROMIUM, skipWithoutChromium as skipReason } from '../support/chromium.js';

const SHOTS = join(process.cwd(), 'test-results', 'serve-portal');

export interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** A browser-less visitor: the session cookie and the page's CSRF token, taken from real answers. */
export interface Visitor {
  cookie: string;
  csrf: string;
}

export interface PortalEnv {
  as: TestAuthorizationServer;
  mcp: TestMcpServer;
  serve: RunningServe;
  /** The first store object (the one `serve` runs on). */
  store: ServeStore;
  browser: Browser;
  /** Lines the main instance logged, and every secret the tests saw, for the leak check. */
  logLines: string[];
  secretsSeen: string[];
  /** Another instance on the same store, with its own portal lifetimes. */
  instance(options?: {
    portalLinkTtlMs?: number;
    portalSessionTtlMs?: number;
    portalSignInUrl?: string;
  }): Promise<RunningServe>;
  /** Serve `html` from the other origin and return its URL. */
  attackerPage(html: string): string;
  portalLink(subject: string, base?: string): Promise<Answer>;
  token(subject: string): Promise<Answer>;
  visit(subject: string): Promise<Visitor>;
  post(path: string, visitor: Partial<Visitor>, origin?: string | null): Promise<Response>;
  connectByApi(subject: string, asUser: string): Promise<void>;
  shot(page: Page, name: string): Promise<void>;
  close(): Promise<void>;
}

export async function startPortalEnv(): Promise<PortalEnv> {
  const env = await startServeEnv({ accessTokenTtl: 300, appKeyLabel: 'portal test' });
  const attacker = await startAttacker();
  const browser = await launchChromium();
  await mkdir(SHOTS, { recursive: true });
  const api = apiOf(env.serve, env.key);
  return {
    as: env.as,
    mcp: env.mcp,
    serve: env.serve,
    store: env.store,
    browser,
    logLines: env.logLines,
    instance: async (options = {}) => env.instance(options),
    attackerPage: attacker.page,
    ...api,
    // A connection made through the API and the harness's browser stand-in, not the page.
    connectByApi: (subject, asUser) => env.connect(subject, asUser, { returnTo: 'https://app.example.com/' }),
    shot,
    close: async () => {
      await browser.close();
      attacker.server.close();
      await env.close();
    },
  };
}

/**
 * Another origin on the same site (same host, another port): SameSite=Lax still sends the
 * cookie from its pages, so only the Origin check and the CSRF token stand in the way.
 */
async function startAttacker(): Promise<{ server: Server; page: (html: string) => string }> {
  let html = '';
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    server,
    page: (text) => {
      html = text;
      return url;
    },
  };
}

function apiOf(serve: RunningServe, key: string) {
  const secretsSeen: string[] = [];
  const portalLink = async (subject: string, base = serve.url): Promise<Answer> => {
    const response = await fetch(`${base}/v1/subjects/${subject}/portal`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
    });
    const body = (await response.json()) as Record<string, unknown>;
    if (typeof body['portal_url'] === 'string')
      secretsSeen.push(new URL(body['portal_url']).searchParams.get('ticket') ?? '');
    return { status: response.status, body };
  };
  const token = async (subject: string): Promise<Answer> => {
    const response = await fetch(`${serve.url}/v1/subjects/${subject}/connections/demo/token`, {
      headers: { authorization: `Bearer ${key}` },
    });
    const body = (await response.json()) as Record<string, unknown>;
    if (typeof body['access_token'] === 'string') secretsSeen.push(body['access_token']);
    return { status: response.status, body };
  };
  /** Open a portal link without a browser, and read the page for its CSRF token. */
  const visit = async (subject: string): Promise<Visitor> => {
    const link = await portalLink(subject);
    const opened = await fetch(String(link.body['portal_url']), { redirect: 'manual' });
    assert.equal(opened.status, 303);
    const cookie = (opened.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    secretsSeen.push(cookie.split('=')[1] ?? '');
    const page = await fetch(`${serve.url}/`, { headers: { cookie } });
    const csrf = /name="csrf" value="([^"]+)"/.exec(await page.text())?.[1];
    assert.ok(csrf !== undefined, 'the page holds a CSRF token');
    return { cookie, csrf };
  };
  const post = async (
    path: string,
    visitor: Partial<Visitor>,
    origin: string | null = serve.url,
  ): Promise<Response> => {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (visitor.cookie !== undefined) headers['cookie'] = visitor.cookie;
    if (origin !== null) headers['origin'] = origin;
    return fetch(`${serve.url}${path}`, {
      method: 'POST',
      headers,
      body: new URLSearchParams(visitor.csrf === undefined ? {} : { csrf: visitor.csrf }).toString(),
      redirect: 'manual',
    });
  };
  return { secretsSeen, portalLink, token, visit, post };
}

async function shot(page: Page, name: string): Promise<void> {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  assert.ok(existsSync(path) && statSync(path).size > 1000, `screenshot ${name} taken`);
}
