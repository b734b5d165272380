/**
 * Plays the user's browser against the demo AS over plain HTTP: follows redirects by hand,
 * keeps cookies, and submits oidc-provider's login, consent and device pages. Nothing has to
 * listen on the redirect URI: the driver stops at the redirect that leaves the AS and hands
 * that URL (code, state, iss) back to the caller, which is exactly what a loopback listener
 * would have received.
 */
import { CookieJar } from './cookie-jar.js';
import { findForm, findLink, type HtmlForm } from './html-form.js';

export interface AuthorizationDriverOptions {
  /** The login name to sign in with; it becomes the token's subject. */
  subject: string;
  /** Approve the consent prompt (default true). False aborts it: the callback carries access_denied. */
  consent?: boolean;
  /** Reuse a jar to keep the AS session between runs (then login is skipped). Default: a fresh one. */
  jar?: CookieJar;
}

/** Upper bound on page loads and redirects in one flow, so a loop fails instead of hanging. */
const MAX_STEPS = 25;

/**
 * Drive an authorization request through login and consent. Resolves with the URL the AS
 * finally redirects to outside itself (normally the loopback callback with `code`, `state`
 * and `iss`; with `error` when consent is refused or the request is rejected).
 */
export async function completeAuthorization(
  authorizationUrl: string | URL,
  options: AuthorizationDriverOptions,
): Promise<URL> {
  const consent = options.consent ?? true;
  const end = await drive(new URL(authorizationUrl), options.jar ?? new CookieJar(), (form, html, url) => {
    const prompt = hiddenValue(form, 'prompt');
    if (prompt === 'login') return fill(form, url, { login: options.subject, password: 'test' });
    if (prompt === 'consent') {
      if (consent) return fill(form, url, {});
      const abort = findLink(html, '/abort');
      if (abort === undefined) throw new Error(`no abort link on the consent page at ${url.href}`);
      return { method: 'GET', url: new URL(abort, url) };
    }
    throw new Error(`unexpected form (prompt=${String(prompt)}) at ${url.href}`);
  });
  if (end.kind !== 'redirect') {
    throw new Error(
      `authorization ended on a page at ${end.url.href} instead of a redirect: ${excerpt(end.html)}`,
    );
  }
  return end.url;
}

export interface Step {
  method: 'GET' | 'POST';
  url: URL;
  body?: URLSearchParams;
}

export type End = { kind: 'redirect'; url: URL } | { kind: 'page'; url: URL; html: string };

/** What to do with a page that has a form: the next request. */
export type FormHandler = (form: HtmlForm, html: string, url: URL) => Step;

/**
 * The browser loop: load, follow same-origin redirects, hand forms to `onForm`. Ends at a
 * redirect to another origin or a page without a form.
 */
export async function drive(start: URL, jar: CookieJar, onForm: FormHandler): Promise<End> {
  let step: Step = { method: 'GET', url: start };
  for (let i = 0; i < MAX_STEPS; i++) {
    const headers: Record<string, string> = { accept: 'text/html' };
    const cookie = jar.header();
    if (cookie !== undefined) headers['cookie'] = cookie;
    if (step.body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(step.url, {
      method: step.method,
      headers,
      redirect: 'manual',
      ...(step.body === undefined ? {} : { body: step.body }),
    });
    jar.store(response);
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel();
      const location = response.headers.get('location');
      if (location === null) throw new Error(`redirect without Location from ${step.url.href}`);
      const next = new URL(location, step.url);
      if (next.origin !== start.origin) return { kind: 'redirect', url: next };
      step = { method: 'GET', url: next };
      continue;
    }
    const html = await response.text();
    if (!response.ok) throw new Error(`HTTP ${response.status} from ${step.url.href}: ${excerpt(html)}`);
    const form = findForm(html);
    if (form === undefined) return { kind: 'page', url: step.url, html };
    step = onForm(form, html, step.url);
  }
  throw new Error(`gave up after ${MAX_STEPS} steps starting at ${start.href}`);
}

/** Submit a form found on `page`: hidden inputs as they are, named visible inputs from `values`. */
export function fill(form: HtmlForm, page: URL, values: Record<string, string>): Step {
  const fields = new URLSearchParams();
  for (const input of form.inputs) fields.append(input.name, values[input.name] ?? input.value);
  const url = new URL(form.action || page.href, page);
  if (form.method === 'POST') return { method: 'POST', url, body: fields };
  url.search = fields.toString();
  return { method: 'GET', url };
}

export function hiddenValue(form: HtmlForm, name: string): string | undefined {
  return form.inputs.find((i) => i.type === 'hidden' && i.name === name)?.value;
}

/** The page's text, short enough for an error message. */
export function excerpt(html: string): string {
  return html
    .replace(/<style[\s\S]*?<\/style>/gi, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}
