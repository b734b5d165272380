import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

import type { PortalGrant } from '../store/serve-contract.js';
import type { ServeContext } from './context.js';
import { HttpError } from './http.js';

/**
 * Who is signed in to the portal page, and whether a form POST really comes from it.
 *
 * The app asks for a portal link for its user; the link carries a random ticket, single use
 * and short-lived. Opening it exchanges the ticket for a session: another random value, held
 * only in an HttpOnly cookie. The store keeps SHA-256 digests of both, so neither its rows nor
 * its backups let anyone in. The CSRF token of a session is an HMAC keyed by the session
 * secret: it needs no column, differs per session, and says nothing about the cookie.
 */

/** Default lifetime of a portal link: minutes, since the app hands it over at once. */
export const PORTAL_LINK_TTL_MS = 5 * 60 * 1000;
/** Default lifetime of a portal session (absolute, not extended by use). */
export const PORTAL_SESSION_TTL_MS = 60 * 60 * 1000;

export interface PortalSession {
  /** The store row: its id is the digest of the cookie value. */
  grant: PortalGrant;
  /** What the page's forms must send back. */
  csrfToken: string;
}

function digest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

function csrfTokenOf(secret: string): string {
  return createHmac('sha256', secret).update('latchkey portal csrf', 'utf8').digest('base64url');
}

/** The origin every form POST must come from: the public URL's. */
export function portalOrigin(ctx: Pick<ServeContext, 'publicUrl'>): string {
  return new URL(ctx.publicUrl).origin;
}

/** The page itself, where links, connect and disconnect all return to. */
export function portalHome(ctx: Pick<ServeContext, 'publicUrl'>): string {
  return `${ctx.publicUrl}/`;
}

/** A new single-use link for `subject`; only its ticket's digest is stored. */
export async function createPortalLink(
  ctx: ServeContext,
  subject: string,
): Promise<{ url: string; expiresAt: number }> {
  const ticket = newSecret();
  const now = Date.now();
  const expiresAt = now + ctx.portalLinkTtlMs;
  await ctx.store.addPortalLink({ id: digest(ticket), subject, createdAt: now, expiresAt });
  return { url: `${ctx.publicUrl}/portal/open?ticket=${ticket}`, expiresAt };
}

/**
 * Redeem a link's ticket for a new session; undefined when the ticket is unknown, expired or
 * already used. Returns the cookie value, which is never stored.
 */
export async function openPortalLink(
  ctx: ServeContext,
  ticket: string,
): Promise<{ secret: string; grant: PortalGrant } | undefined> {
  const link = await ctx.store.takePortalLink(digest(ticket));
  if (link === undefined) return undefined;
  const secret = newSecret();
  const now = Date.now();
  const grant: PortalGrant = {
    id: digest(secret),
    subject: link.subject,
    createdAt: now,
    expiresAt: now + ctx.portalSessionTtlMs,
  };
  await ctx.store.addPortalSession(grant);
  return { secret, grant };
}

/**
 * The cookie's name and attributes. `__Host-` (Secure, Path=/, no Domain) keeps a sibling
 * host from planting its own session in the browser; it needs https and a public URL at the
 * root of its host. Otherwise the cookie is scoped to the public URL's path, and Secure
 * whenever the public URL is https.
 */
export function cookieSpec(ctx: Pick<ServeContext, 'publicUrl'>): { name: string; attributes: string } {
  const url = new URL(ctx.publicUrl);
  const https = url.protocol === 'https:';
  const atRoot = url.pathname === '/' || url.pathname === '';
  const name = https && atRoot ? '__Host-latchkey_portal' : 'latchkey_portal';
  const path = atRoot ? '/' : url.pathname;
  return { name, attributes: `Path=${path}; HttpOnly; SameSite=Lax${https ? '; Secure' : ''}` };
}

export function sessionCookie(ctx: ServeContext, secret: string): string {
  const { name, attributes } = cookieSpec(ctx);
  return `${name}=${secret}; ${attributes}; Max-Age=${Math.floor(ctx.portalSessionTtlMs / 1000)}`;
}

export function clearedCookie(ctx: ServeContext): string {
  const { name, attributes } = cookieSpec(ctx);
  return `${name}=; ${attributes}; Max-Age=0`;
}

/** The cookie value, if exactly one cookie of our name came: two mean one was planted. */
export function cookieSecret(ctx: ServeContext, req: IncomingMessage): string | undefined {
  const { name } = cookieSpec(ctx);
  const values = (req.headers.cookie ?? '')
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part.startsWith(`${name}=`))
    .map((part) => part.slice(name.length + 1));
  return values.length === 1 && /^[A-Za-z0-9_-]{43}$/.test(values[0] ?? '') ? values[0] : undefined;
}

/** The signed-in session of this request, if any. */
export async function sessionOf(ctx: ServeContext, req: IncomingMessage): Promise<PortalSession | undefined> {
  const secret = cookieSecret(ctx, req);
  if (secret === undefined) return undefined;
  const grant = await ctx.store.getPortalSession(digest(secret));
  return grant === undefined ? undefined : { grant, csrfToken: csrfTokenOf(secret) };
}

/**
 * A form POST acts for the session only when it comes from the page: the browser's Origin is
 * the public URL's (a cross-site form cannot fake it), and the form carries the session's
 * CSRF token. Either alone would do against today's browsers; both cost nothing.
 */
export function checkFormPost(
  ctx: ServeContext,
  req: IncomingMessage,
  session: PortalSession | undefined,
  form: URLSearchParams,
): PortalSession {
  if (session === undefined) {
    throw new HttpError(401, {
      error: 'unauthorized',
      message: 'you are not signed in to this page; open it again from the application.',
    });
  }
  const origin = req.headers.origin;
  const given = Buffer.from(form.get('csrf') ?? '', 'utf8');
  const expected = Buffer.from(session.csrfToken, 'utf8');
  const tokenOk = given.length === expected.length && timingSafeEqual(given, expected);
  if (origin !== portalOrigin(ctx) || !tokenOk) {
    throw new HttpError(403, {
      error: 'forbidden',
      message: 'this form did not come from this page; reload the page and try again.',
    });
  }
  return session;
}
