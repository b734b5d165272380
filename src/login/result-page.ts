/**
 * The page the browser shows after the redirect: which server was (or was not) authorized,
 * and that the tab can be closed. Everything interpolated is HTML-escaped; the message of a
 * failure is ours, never the AS's `error_description` verbatim.
 */
export type ResultOutcome =
  | { ok: true }
  | { ok: false; message: string }
  /** A response this login does not take (another login's, or forged); the login goes on. */
  | { ok: false; ignored: true; title: string; message: string };

export function resultPage(server: string, outcome: ResultOutcome): string {
  const title = outcome.ok ? 'Signed in' : 'ignored' in outcome ? outcome.title : 'Sign-in failed';
  const body = outcome.ok
    ? `<p>latchkey is now signed in to <strong>${escape(server)}</strong>.</p><p>You can close this tab.</p>`
    : 'ignored' in outcome
      ? `<p>${escape(outcome.message)}</p><p>Nothing was saved. You can close this tab.</p>`
      : `<p>latchkey could not sign in to <strong>${escape(server)}</strong>.</p><p>${escape(outcome.message)}</p>` +
        `<p>You can close this tab and try again from the terminal.</p>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>latchkey: ${title}</title>
<style>body{font:16px system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}strong{word-break:break-all}</style></head>
<body><h1>${title}</h1>${body}</body></html>`;
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
