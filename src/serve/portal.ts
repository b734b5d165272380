import type { IncomingMessage, ServerResponse } from 'node:http';

import {
  checkFormPost,
  clearedCookie,
  createPortalLink,
  openPortalLink,
  portalHome,
  sessionCookie,
  sessionOf,
} from './portal-auth.js';
import { handOffPage, homePage, type HomeView, messagePage, sendPage } from './portal-html.js';
import type { UpstreamConfig } from './config.js';
import { startConnect } from './connect.js';
import { disconnect, listConnections } from './connections.js';
import { checkedSubject, type ServeContext, upstreamOf } from './context.js';
import { httpErrorFor } from './errors.js';
import { HttpError, MAX_BODY_BYTES, sendJson } from './http.js';
import type { Call, Route } from './routes.js';

/**
 * The portal (docs/serve.md, "The portal"): a page where a person sees and manages their own
 * connections. The app asks for a link for its user; everything after that is the browser's,
 * and the subject always comes from the session, never from the request.
 */
export const PORTAL_ROUTES: readonly Route[] = [
  { method: 'POST', template: '/v1/subjects/{subject}/portal', appKey: true, handle: createLink },
  { method: 'GET', template: '/', appKey: false, handle: page(home) },
  { method: 'GET', template: '/portal/open', appKey: false, handle: page(openLink) },
  {
    method: 'POST',
    template: '/portal/connections/{upstream}/connect',
    appKey: false,
    handle: page(connectForm),
  },
  {
    method: 'POST',
    template: '/portal/connections/{upstream}/disconnect',
    appKey: false,
    handle: page(disconnectForm),
  },
  { method: 'POST', template: '/portal/sign-out', appKey: false, handle: page(signOut) },
];

async function createLink({ ctx, res, params }: Call): Promise<void> {
  const link = await createPortalLink(ctx, checkedSubject(params[0] ?? ''));
  sendJson(res, 201, { portal_url: link.url, expires_at: new Date(link.expiresAt).toISOString() });
}

/** People get pages, not the API's JSON, for anything refused. */
function page(handle: (call: Call) => Promise<void>): (call: Call) => Promise<void> {
  return async (call) => {
    try {
      await handle(call);
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      const title =
        error.status === 401 ? 'Not signed in' : error.status === 403 ? 'Refused' : 'Not possible';
      sendPage(call.res, error.status, messagePage(title, error.message), 'same-origin', error.headers);
    }
  };
}

async function home({ ctx, req, res, url }: Call): Promise<void> {
  const session = await sessionOf(ctx, req);
  const wanted = ctx.upstreams.get(url.searchParams.get('connect') ?? '');
  if (session === undefined) {
    if (ctx.portalSignInUrl !== undefined) {
      // The person came from a connect link (an MCP host's URL elicitation) or a bookmark:
      // the application knows who they are and opens a portal link for them.
      res.writeHead(303, {
        location: signInLocation(ctx.portalSignInUrl, wanted),
        'cache-control': 'no-store',
      });
      res.end();
      return;
    }
    const text = 'Open this page again from the application you use: it gives you a fresh link.';
    sendPage(res, 401, messagePage('Not signed in', text));
    return;
  }
  const view: HomeView = {
    subject: session.grant.subject,
    upstreams: [...ctx.upstreams.values()],
    connections: await listConnections(ctx, session.grant.subject),
    csrfToken: session.csrfToken,
    notice:
      noticeOf(ctx, url.searchParams) ??
      (wanted === undefined ? undefined : { text: `To use ${wanted.id}, connect it below.`, bad: false }),
  };
  sendPage(res, 200, homePage(view));
}

function signInLocation(signInUrl: string, upstream: UpstreamConfig | undefined): string {
  const location = new URL(signInUrl);
  if (upstream !== undefined) location.searchParams.set('upstream', upstream.id);
  return location.href;
}

async function openLink({ ctx, req, res, url }: Call): Promise<void> {
  const opened = await openPortalLink(ctx, url.searchParams.get('ticket') ?? '');
  if (opened === undefined) {
    throw new HttpError(400, {
      error: 'invalid_link',
      message: 'This link has expired or was already used. Open the page again from the application.',
    });
  }
  // A browser holds one portal session: the one it had (perhaps another user's) ends here.
  const previous = await sessionOf(ctx, req);
  if (previous !== undefined) await ctx.store.deletePortalSession(previous.grant.id);
  res.writeHead(303, {
    location: portalHome(ctx),
    'set-cookie': sessionCookie(ctx, opened.secret),
    'cache-control': 'no-store',
    // The ticket is in this URL: it must not travel on as a Referer.
    'referrer-policy': 'no-referrer',
  });
  res.end();
}

/**
 * Start the connect flow for the session's subject, returning to this page. The AS is
 * reached by a page, not a redirect of the POST: see PORTAL_CSP's form-action.
 */
async function connectForm({ ctx, req, res, params }: Call): Promise<void> {
  const session = checkFormPost(ctx, req, await sessionOf(ctx, req), await readForm(req));
  const upstream = upstreamOf(ctx, params[0] ?? '');
  let authorizationUrl: string;
  try {
    ({ authorizationUrl } = await startConnect(ctx, session.grant.subject, upstream, portalHome(ctx)));
  } catch (error) {
    const code = httpErrorFor(ctx, error, { subject: session.grant.subject, upstream }).body.error;
    backHome(ctx, res, { latchkey_status: 'error', latchkey_upstream: upstream.id, latchkey_error: code });
    return;
  }
  sendPage(res, 200, handOffPage(upstream, authorizationUrl), 'no-referrer');
}

async function disconnectForm({ ctx, req, res, params }: Call): Promise<void> {
  const session = checkFormPost(ctx, req, await sessionOf(ctx, req), await readForm(req));
  const upstream = upstreamOf(ctx, params[0] ?? '');
  const query: Record<string, string> = { latchkey_upstream: upstream.id };
  try {
    const done = await disconnect(ctx, session.grant.subject, upstream);
    query['latchkey_status'] = 'disconnected';
    if (done.pending_revocation.length > 0) query['latchkey_error'] = 'revocation_pending';
  } catch (error) {
    query['latchkey_status'] = 'error';
    query['latchkey_error'] = httpErrorFor(ctx, error, {
      subject: session.grant.subject,
      upstream,
    }).body.error;
  }
  backHome(ctx, res, query);
}

async function signOut({ ctx, req, res }: Call): Promise<void> {
  const session = checkFormPost(ctx, req, await sessionOf(ctx, req), await readForm(req));
  await ctx.store.deletePortalSession(session.grant.id);
  sendPage(
    res,
    200,
    messagePage('Signed out', 'Open this page again from the application when you need it.'),
    'same-origin',
    { 'set-cookie': clearedCookie(ctx) },
  );
}

/** Post/redirect/get: the outcome rides in the query, as the connect callback's does. */
function backHome(ctx: ServeContext, res: ServerResponse, query: Record<string, string>): void {
  const location = new URL(portalHome(ctx));
  for (const [name, value] of Object.entries(query)) location.searchParams.set(name, value);
  res.writeHead(303, {
    location: location.href,
    'cache-control': 'no-store',
    'referrer-policy': 'same-origin',
  });
  res.end();
}

/**
 * The outcome shown at the top of the page. Anyone can put a query on a link to this page,
 * so only known upstreams and fixed sentences are shown; an unknown code is shown as a code.
 */
function noticeOf(ctx: ServeContext, query: URLSearchParams): HomeView['notice'] {
  const upstream: UpstreamConfig | undefined = ctx.upstreams.get(query.get('latchkey_upstream') ?? '');
  if (upstream === undefined) return undefined;
  const error = query.get('latchkey_error');
  switch (query.get('latchkey_status')) {
    case 'connected':
      return { text: `Connected to ${upstream.id}.`, bad: false };
    case 'disconnected':
      return {
        text:
          error === 'revocation_pending'
            ? `Disconnected from ${upstream.id}. The server did not answer; it will be told to revoke access as soon as it does.`
            : `Disconnected from ${upstream.id}.`,
        bad: false,
      };
    case 'error':
      return {
        text:
          error === 'access_denied'
            ? `Not connected: access to ${upstream.id} was declined at its sign-in page.`
            : `${upstream.id}: that did not work (${(error ?? 'unknown').slice(0, 64)}). Try again later.`,
        bad: true,
      };
    default:
      return undefined;
  }
}

/** A urlencoded form body, bounded like every body; anything else is refused. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new HttpError(415, { error: 'invalid_request', message: 'send the form from the page.' });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new HttpError(
        413,
        { error: 'body_too_large', message: 'the form is too large.' },
        { connection: 'close' },
      );
    }
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
