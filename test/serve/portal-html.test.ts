// The portal page's rendering, for the states the browser test does not reach cheaply
// (retrying, refresh-due) and for hostile strings from the store and the network.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { ConnectionView } from '../../src/serve/connections.js';
import { handOffPage, homePage, PORTAL_CSP } from '../../src/serve/portal-html.js';

const HOSTILE = `<img src=x onerror="alert(1)">'&`;

function connection(state: ConnectionView['state'], overrides: Partial<ConnectionView> = {}): ConnectionView {
  return {
    upstream: 'demo',
    state,
    expires_at: new Date(Date.now() + 600_000).toISOString(),
    last_refresh_at: null,
    last_error: null,
    scopes: [],
    ...overrides,
  };
}

function render(c: ConnectionView | undefined): string {
  return homePage({
    subject: 'alice',
    upstreams: [{ id: 'demo', url: 'https://mcp.example.com/mcp' }],
    connections: c === undefined ? [] : [c],
    csrfToken: 'tok',
    notice: undefined,
  });
}

describe('serve portal: rendering', () => {
  it('says each state in words, with the actions that fit it', () => {
    const cases: [ConnectionView | undefined, RegExp, string[]][] = [
      [undefined, /Not connected/, ['Connect']],
      [connection('connected'), /Connected<\/span> — Working/, ['Disconnect']],
      [connection('refresh-due'), /Connected, renewal due<\/span> — It is being renewed now/, ['Disconnect']],
      [
        connection('retrying'),
        /Retrying<\/span> — The server is unreachable, we keep trying\. Your connection is kept\./,
        ['Disconnect'],
      ],
      [connection('needs-login'), /Needs login<\/span> — .*sign in again\./, ['Sign in again', 'Disconnect']],
    ];
    for (const [c, words, buttons] of cases) {
      const html = render(c);
      assert.match(html, words);
      const shown = [...html.matchAll(/<button[^>]*name="action"[^>]*>([^<]+)<\/button>/g)].map((m) => m[1]);
      assert.deepEqual(shown.slice(0, -1), buttons, `${c?.state ?? 'none'}: buttons`);
      assert.equal(shown.at(-1), 'Sign out');
    }
  });

  it('escapes the last error, the upstream URL and the CSRF token; the hand-off escapes the AS URL', () => {
    const html = homePage({
      subject: 'alice',
      upstreams: [{ id: 'demo', url: `https://mcp.example.com/${encodeURI(HOSTILE)}` }],
      connections: [
        connection('retrying', {
          last_error: { code: HOSTILE, message: HOSTILE, at: new Date().toISOString() },
        }),
      ],
      csrfToken: `"${HOSTILE}`,
      notice: { text: HOSTILE, bad: true },
    });
    assert.ok(!html.includes('<img'), 'no markup from data');
    assert.ok(!html.includes(`"alert(1)"`));
    assert.ok(html.includes('&#60;img src=x onerror=&#34;alert(1)&#34;&#62;&#39;&#38;'));
    const hand = handOffPage(
      { id: 'demo', url: 'https://mcp.example.com/mcp' },
      `https://as.example.com/auth?a=1&b="><script>`,
    );
    assert.ok(!hand.includes('"><script>'));
    assert.match(
      hand,
      /content="0;url=https:\/\/as\.example\.com\/auth\?a=1&#38;b=&#34;&#62;&#60;script&#62;"/,
    );
  });

  it('the CSP allows no script, no frames, and forms to this origin only', () => {
    assert.match(PORTAL_CSP, /^default-src 'none'; /);
    assert.ok(!/script-src|unsafe/.test(PORTAL_CSP));
    assert.match(PORTAL_CSP, /form-action 'self';/);
    assert.match(PORTAL_CSP, /frame-ancestors 'none'/);
  });
});
