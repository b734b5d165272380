import type { IncomingMessage, ServerResponse } from 'node:http';

import type { AppKeyRecord } from '../store/serve-contract.js';
import type { UpstreamConfig } from './config.js';
import { bearerOf, verifyAppKey } from './app-keys.js';
import { completeConnect } from './callback.js';
import { checkedReturnTo, startConnect } from './connect.js';
import { disconnect, listConnections, tokenFor } from './connections.js';
import { checkedSubject, type ServeContext, upstreamOf } from './context.js';
import { httpErrorFor } from './errors.js';
import { HttpError, readJson, sendJson } from './http.js';
import { MCP_ROUTES } from './mcp-routes.js';
import { openApiDocument } from './openapi.js';
import { PORTAL_ROUTES } from './portal.js';
import { requireInScope, subjectParamIndex } from './scopes.js';
import { OPS_ROUTES } from './ops-routes.js';

/** What a route handler is given: the request, its path parameters, and the context. */
export interface Call {
  ctx: ServeContext;
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: string[];
  /** The verified app key, on app-key routes (its scope filters GET /v1/events). */
  app?: AppKeyRecord | undefined;
}

export interface Route {
  method: string;
  /** The path as OpenAPI writes it; `{name}` is one path segment. */
  template: string;
  /** Whether the caller must present an app key (every /v1 route). */
  appKey: boolean;
  handle(call: Call): Promise<void>;
}

/**
 * The API (docs/serve.md, openapi.ts); the first route whose method and path match answers.
 * Exported with its templates so a test can hold the OpenAPI document to the same list.
 */
export const ROUTES: readonly Route[] = [
  {
    method: 'GET',
    template: '/healthz',
    appKey: false,
    handle: async ({ res }) => sendJson(res, 200, { status: 'ok' }),
  },
  { method: 'GET', template: '/readyz', appKey: false, handle: ready },
  {
    method: 'GET',
    template: '/openapi.json',
    appKey: false,
    handle: async ({ ctx, res }) => sendJson(res, 200, openApiDocument(ctx.publicUrl)),
  },
  { method: 'GET', template: '/oauth/callback', appKey: false, handle: callback },
  { method: 'GET', template: '/v1/upstreams', appKey: true, handle: upstreams },
  {
    method: 'GET',
    template: '/v1/subjects/{subject}/connections',
    appKey: true,
    handle: async ({ ctx, res, params }) =>
      sendJson(res, 200, { connections: await listConnections(ctx, checkedSubject(params[0] ?? '')) }),
  },
  {
    method: 'POST',
    template: '/v1/subjects/{subject}/connections/{upstream}',
    appKey: true,
    handle: connect,
  },
  {
    method: 'DELETE',
    template: '/v1/subjects/{subject}/connections/{upstream}',
    appKey: true,
    handle: async ({ ctx, res, params }) => {
      const { subject, upstream } = target(ctx, params);
      sendJson(res, 200, await disconnect(ctx, subject, upstream));
    },
  },
  {
    method: 'GET',
    template: '/v1/subjects/{subject}/connections/{upstream}/token',
    appKey: true,
    handle: async ({ ctx, res, params }) => {
      const { subject, upstream } = target(ctx, params);
      sendJson(res, 200, await tokenFor(ctx, subject, upstream));
    },
  },
  ...PORTAL_ROUTES,
  ...MCP_ROUTES,
  ...OPS_ROUTES,
];

/** Templates compiled once: literal parts escaped, each `{name}` one non-empty segment. */
const PATTERNS = new Map(
  ROUTES.map((r) => [
    r,
    new RegExp(
      `^${r.template
        .split(/\{[^}]+\}/)
        .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('([^/]+)')}$`,
    ),
  ]),
);

/** Answer one request; errors become the API's JSON error shape. */
export async function route(ctx: ServeContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://serve.invalid');
  const matching = ROUTES.map((r) => ({ r, m: PATTERNS.get(r)?.exec(url.pathname) ?? null })).filter(
    (x) => x.m !== null,
  );
  const hit = matching.find((x) => x.r.method === req.method);
  if (hit === undefined) {
    if (matching.length > 0) {
      const allow = matching.map((x) => x.r.method).join(', ');
      throw new HttpError(405, { error: 'method_not_allowed', message: `use ${allow}.` }, { allow });
    }
    throw new HttpError(404, { error: 'not_found', message: 'no such endpoint; see docs/serve.md.' });
  }
  const params = (hit.m as RegExpExecArray).slice(1);
  const app = hit.r.appKey ? await requireAppKey(ctx, req) : undefined;
  if (app !== undefined) checkScope(app, hit.r, params);
  await hit.r.handle({ ctx, req, res, url, params, app });
}

/**
 * The one check of a key's subject scope (scopes.ts) for every route with `{subject}` in its
 * path, before its handler runs: found from the template, so a new route cannot forget it.
 */
function checkScope(app: AppKeyRecord, r: Route, params: string[]): void {
  const index = subjectParamIndex(r.template);
  if (index !== undefined) requireInScope(app, checkedSubject(params[index] ?? ''));
}

async function requireAppKey(ctx: ServeContext, req: IncomingMessage): Promise<AppKeyRecord> {
  const presented = bearerOf(req.headers.authorization);
  const app = presented === undefined ? undefined : await verifyAppKey(ctx.store, presented);
  if (app === undefined) {
    throw new HttpError(
      401,
      {
        error: 'unauthorized',
        message:
          presented === undefined
            ? 'send an app key as Authorization: Bearer <key>.'
            : 'the app key is not valid (unknown, malformed or deleted).',
      },
      { 'www-authenticate': 'Bearer realm="latchkey"' },
    );
  }
  return app;
}

function target(ctx: ServeContext, params: string[]): { subject: string; upstream: UpstreamConfig } {
  return { subject: checkedSubject(params[0] ?? ''), upstream: upstreamOf(ctx, params[1] ?? '') };
}

async function connect({ ctx, req, res, params }: Call): Promise<void> {
  const { subject, upstream } = target(ctx, params);
  const returnTo = checkedReturnTo(await readJson(req), ctx.returnToOrigins);
  try {
    const started = await startConnect(ctx, subject, upstream, returnTo);
    sendJson(res, 201, {
      authorization_url: started.authorizationUrl,
      expires_at: new Date(started.expiresAt).toISOString(),
    });
  } catch (error) {
    throw httpErrorFor(ctx, error, { subject, upstream });
  }
}

/** A person's browser lands here; with no attempt to return to, it gets a short page, not JSON. */
async function callback({ ctx, res, url }: Call): Promise<void> {
  let outcome;
  try {
    outcome = await completeConnect(ctx, url.searchParams);
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    const page = `<!doctype html><meta charset="utf-8"><title>Sign-in not completed</title><p>${escapeHtml(error.message)}</p>`;
    res.writeHead(error.status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(page);
    return;
  }
  res.writeHead(303, {
    location: outcome.location,
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
  });
  res.end();
}

async function upstreams({ ctx, res }: Call): Promise<void> {
  sendJson(res, 200, {
    upstreams: [...ctx.upstreams.values()].map((u) => ({
      id: u.id,
      url: u.url,
      scopes: u.scopes ?? null,
      client: u.clientId === undefined ? 'dynamic' : 'pre-registered',
    })),
  });
}

async function ready({ ctx, res }: Call): Promise<void> {
  try {
    await ctx.store.lastEventId();
    sendJson(res, 200, { status: 'ready' });
  } catch {
    sendJson(res, 503, { status: 'store_unavailable' });
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
