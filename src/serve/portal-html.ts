import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';

import type { UpstreamConfig } from './config.js';
import type { ConnectionView } from './connections.js';

/**
 * The portal's HTML: plain server-rendered pages with no script at all. Every value that
 * came from the network, the store or the configuration goes through `esc`.
 */

export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = [
  'body{font:15px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}',
  'h1{font-size:1.4rem}section{border:1px solid #d0d7de;border-radius:6px;padding:.75rem 1rem;margin:1rem 0}',
  'h2{font-size:1.1rem;margin:0}.url{color:#57606a;font-size:.85rem;word-break:break-all}',
  '.state{font-weight:600}.connected .state{color:#1a7f37}.needs-login .state{color:#cf222e}',
  '.retrying .state,.refresh-due .state{color:#9a6700}.error{color:#cf222e;font-size:.9rem}',
  '.notice{background:#ddf4ff;padding:.5rem 1rem;border-radius:6px}.notice.bad{background:#ffebe9}',
  'form{display:inline}button{font:inherit;padding:.25rem .9rem;margin-top:.5rem}',
].join('');

/** The one stylesheet, allowed by its hash so the CSP needs neither 'unsafe-inline' nor a file. */
const STYLE_HASH = createHash('sha256').update(STYLE, 'utf8').digest('base64');

/**
 * No script, no frames, no other origin. form-action is 'self' only: Connect does not
 * redirect its POST to the AS (browsers hold redirects of a form submission to form-action),
 * it answers a page that moves on by meta refresh (handOffPage).
 */
export const PORTAL_CSP = `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

/**
 * Send a page. Referrer-Policy is same-origin on pages holding forms: under no-referrer a
 * browser sends `Origin: null` with a form POST (Fetch, "append a request Origin header"),
 * which would defeat the Origin check. Nothing goes to other origins under either policy.
 */
export function sendPage(
  res: ServerResponse,
  status: number,
  html: string,
  referrer: 'same-origin' | 'no-referrer' = 'same-origin',
  headers: Readonly<Record<string, string | string[]>> = {},
): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'cache-control': 'no-store',
    'content-security-policy': PORTAL_CSP,
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': referrer,
    ...headers,
  });
  res.end(html);
}

function shell(title: string, body: string, head = ''): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">${head}<title>${esc(title)}</title><style>${STYLE}</style></head><body>${body}</body></html>`;
}

/** A page with one message and no actions (no session, an expired link, a refused form). */
export function messagePage(title: string, message: string): string {
  return shell(title, `<h1>${esc(title)}</h1><p>${esc(message)}</p>`);
}

/** Between the Connect POST and the AS: moves on by itself, with a link for the rare browser that does not. */
export function handOffPage(upstream: UpstreamConfig, authorizationUrl: string): string {
  const target = esc(authorizationUrl);
  const host = esc(new URL(authorizationUrl).host);
  return shell(
    `Connecting ${upstream.id}`,
    `<h1>Connecting ${esc(upstream.id)}</h1><p>Taking you to <strong>${host}</strong> to sign in…</p><p><a href="${target}" id="continue">Continue to ${host}</a></p>`,
    `<meta http-equiv="refresh" content="0;url=${target}">`,
  );
}

/** The state of a connection in words a person acts on. */
const STATES: Record<ConnectionView['state'] | 'none', { label: string; detail: string }> = {
  connected: { label: 'Connected', detail: 'Working. It is renewed before it expires.' },
  'refresh-due': { label: 'Connected, renewal due', detail: 'It is being renewed now.' },
  retrying: {
    label: 'Retrying',
    detail: 'The server is unreachable, we keep trying. Your connection is kept.',
  },
  'needs-login': {
    label: 'Needs login',
    detail: 'The server no longer accepts this connection: sign in again.',
  },
  none: { label: 'Not connected', detail: 'Connect to use it from the application.' },
};

export interface HomeView {
  /** Shown, so a person handed someone else's link can tell before connecting anything. */
  subject: string;
  upstreams: readonly UpstreamConfig[];
  connections: readonly ConnectionView[];
  csrfToken: string;
  /** What the last action did, from the query the page was reached with. */
  notice: { text: string; bad: boolean } | undefined;
}

export function homePage(view: HomeView): string {
  const notice =
    view.notice === undefined
      ? ''
      : `<p class="notice${view.notice.bad ? ' bad' : ''}" role="status">${esc(view.notice.text)}</p>`;
  const sections = view.upstreams.map((u) =>
    upstreamSection(
      u,
      view.connections.find((c) => c.upstream === u.id),
      view.csrfToken,
    ),
  );
  const signOut = form('portal/sign-out', view.csrfToken, 'Sign out', 'sign-out');
  return shell(
    'Your connections',
    `<h1>Your connections</h1><p class="who">Signed in as <code>${esc(view.subject)}</code>.</p>${notice}${sections.join('') || '<p>No servers are configured.</p>'}<p>${signOut}</p>`,
  );
}

function upstreamSection(u: UpstreamConfig, c: ConnectionView | undefined, csrf: string): string {
  const state = c?.state ?? 'none';
  const words = STATES[state];
  const id = encodeURIComponent(u.id);
  const facts: string[] = [];
  if (c?.expires_at != null) {
    const verb = Date.parse(c.expires_at) > Date.now() ? 'expires' : 'expired';
    facts.push(`<p class="expiry">Access ${verb} ${esc(when(c.expires_at))}.</p>`);
  }
  if (c?.last_error != null) {
    facts.push(
      `<p class="error">Last error (${esc(when(c.last_error.at))}): ${esc(c.last_error.message)} <code>${esc(c.last_error.code)}</code></p>`,
    );
  }
  const actions: string[] = [];
  if (c === undefined || state === 'needs-login') {
    actions.push(
      form(
        `portal/connections/${id}/connect`,
        csrf,
        c === undefined ? 'Connect' : 'Sign in again',
        'connect',
      ),
    );
  }
  if (c !== undefined)
    actions.push(form(`portal/connections/${id}/disconnect`, csrf, 'Disconnect', 'disconnect'));
  return `<section class="upstream ${state}" data-upstream="${esc(u.id)}" data-state="${state}"><h2>${esc(u.id)}</h2><p class="url">${esc(u.url)}</p><p><span class="state">${esc(words.label)}</span> — ${esc(words.detail)}</p>${facts.join('')}${actions.join(' ')}</section>`;
}

/** A one-button form; actions are relative to the page, so a public URL with a path works. */
function form(action: string, csrf: string, label: string, name: string): string {
  return `<form method="post" action="${esc(action)}"><input type="hidden" name="csrf" value="${esc(csrf)}"><button type="submit" name="action" value="${esc(name)}">${esc(label)}</button></form>`;
}

/** ISO time in a fixed, readable form (UTC: the page has no script to localize it). */
function when(iso: string): string {
  return `${iso.slice(0, 16).replace('T', ' ')} UTC`;
}
