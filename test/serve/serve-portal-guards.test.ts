// The portal's guards: single-use and expiring links and sessions, CSRF (a real cross-origin
// form in Chromium, forged tokens, missing Origin), one user's session against another's
// connections, escaping, sign-out, and no secret in the log (test/serve/portal-env.ts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { completeAuthorization } from '../harness/index.js';
import { type PortalEnv, skipReason, startPortalEnv } from './portal-env.js';

describe('latchkey serve: the portal refuses what it must', { skip: skipReason() }, () => {
  let e: PortalEnv;
  before(async () => {
    e = await startPortalEnv();
  });
  after(async () => {
    await e?.close();
  });

  it('a portal link is single use, expires, and is only given for an app key', async () => {
    const link = String((await e.portalLink('gina')).body['portal_url']);
    assert.equal((await fetch(link, { redirect: 'manual' })).status, 303);
    const reused = await fetch(link, { redirect: 'manual' });
    assert.equal(reused.status, 400, 'reused');
    assert.equal(reused.headers.get('set-cookie'), null);
    assert.match(await reused.text(), /expired or was already used/);

    const short = await e.instance({ portalLinkTtlMs: 1 });
    try {
      const stale = String((await e.portalLink('gina', short.url)).body['portal_url']);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const expired = await fetch(stale, { redirect: 'manual' });
      assert.equal(expired.status, 400, 'expired');
      assert.equal(expired.headers.get('set-cookie'), null);
    } finally {
      await short.close();
    }
    const forged = await fetch(`${e.serve.url}/portal/open?ticket=${randomBytes(32).toString('base64url')}`, {
      redirect: 'manual',
    });
    assert.equal(forged.status, 400);
    const keyless = await fetch(`${e.serve.url}/v1/subjects/gina/portal`, { method: 'POST' });
    assert.equal(keyless.status, 401);
    const badSubject = await e.portalLink('gi%20na');
    assert.equal(badSubject.status, 400);
  });

  it('without a session, or once it expired, the page only says to open it from the app', async () => {
    const none = await fetch(`${e.serve.url}/`);
    assert.equal(none.status, 401);
    const text = await none.text();
    assert.match(text, /Open this page again from the application/);
    assert.ok(!text.includes('<form'), 'no actions without a session');

    const short = await e.instance({ portalSessionTtlMs: 50 });
    try {
      const link = String((await e.portalLink('hana', short.url)).body['portal_url']);
      const opened = await fetch(link, { redirect: 'manual' });
      const cookie = (opened.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      assert.equal((await fetch(`${short.url}/`, { headers: { cookie } })).status, 200);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal((await fetch(`${short.url}/`, { headers: { cookie } })).status, 401, 'expired session');
    } finally {
      await short.close();
    }
  });

  it('a connect link (URL elicitation) without a session goes to the app to sign in; with one, it names the upstream', async () => {
    // Without a sign-in URL the page can only say to come back from the app (the test above).
    const withSignIn = await e.instance({ portalSignInUrl: 'https://app.example.com/latchkey?from=gateway' });
    try {
      const away = await fetch(`${withSignIn.url}/?connect=demo`, { redirect: 'manual' });
      assert.equal(away.status, 303);
      const location = new URL(away.headers.get('location') ?? '');
      assert.equal(location.origin + location.pathname, 'https://app.example.com/latchkey');
      assert.equal(location.searchParams.get('from'), 'gateway', "the app's own query is kept");
      assert.equal(location.searchParams.get('upstream'), 'demo');
      const unknown = await fetch(`${withSignIn.url}/?connect=nope`, { redirect: 'manual' });
      assert.equal(new URL(unknown.headers.get('location') ?? '').searchParams.get('upstream'), null);
    } finally {
      await withSignIn.close();
    }
    const kim = await e.visit('kim');
    const page = await fetch(`${e.serve.url}/?connect=demo`, { headers: { cookie: kim.cookie } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /To use demo, connect it below\./);
  });

  it('a cross-origin POST from Chromium, a forged CSRF token, or no Origin is refused', async () => {
    await e.connectByApi('ivan', 'ivan-at-as');
    const ivan = await e.visit('ivan');
    const path = '/portal/connections/demo/disconnect';
    // Even holding ivan's real token, a page of another origin cannot post for him.
    const context = await e.browser.newContext();
    try {
      await context.addCookies([
        {
          name: 'latchkey_portal',
          value: ivan.cookie.split('=')[1] ?? '',
          url: e.serve.url,
          httpOnly: true,
          sameSite: 'Lax',
        },
      ]);
      const page = await context.newPage();
      const attackerUrl = e.attackerPage(
        `<form method="post" action="${e.serve.url}${path}"><input type="hidden" name="csrf" value="${ivan.csrf}"><button>win a prize</button></form>`,
      );
      await page.goto(attackerUrl);
      const [answer] = await Promise.all([page.waitForNavigation(), page.click('button')]);
      assert.equal(answer?.status(), 403, 'cross-origin form POST refused');
      await e.shot(page, '5-cross-origin-refused');
    } finally {
      await context.close();
    }
    const forged = await e.post(path, { cookie: ivan.cookie, csrf: randomBytes(32).toString('base64url') });
    assert.equal(forged.status, 403, 'forged CSRF token');
    assert.equal((await e.post(path, { cookie: ivan.cookie })).status, 403, 'no CSRF token');
    assert.equal((await e.post(path, ivan, null)).status, 403, 'no Origin');
    assert.equal((await e.post(path, ivan, 'null')).status, 403, 'opaque Origin');
    assert.equal((await e.post(path, ivan, 'http://evil.example')).status, 403, 'foreign Origin');
    assert.equal((await e.post(path, { csrf: ivan.csrf })).status, 401, 'no cookie');
    assert.equal((await e.token('ivan')).status, 200, 'ivan is still connected after all of it');

    const done = await e.post(path, ivan);
    assert.equal(done.status, 303, 'the real page can');
    assert.match(done.headers.get('location') ?? '', /latchkey_status=disconnected/);
    assert.equal((await e.token('ivan')).status, 409);
  });

  it("one user's session cannot see, use or revoke another user's connection", async () => {
    await e.connectByApi('bob', 'bob-at-as');
    const bobToken = String((await e.token('bob')).body['access_token']);
    const anna = await e.visit('anna');
    const bob = await e.visit('bob');
    const annaPage = await (await fetch(`${e.serve.url}/`, { headers: { cookie: anna.cookie } })).text();
    assert.match(annaPage, /data-state="none"/, "anna sees demo as not connected, not bob's connection");
    assert.match(annaPage, /Signed in as <code>anna<\/code>/);
    const bobPage = await (await fetch(`${e.serve.url}/`, { headers: { cookie: bob.cookie } })).text();
    assert.match(bobPage, /data-state="connected"/);

    const path = '/portal/connections/demo/disconnect';
    const annaTries = await e.post(path, anna);
    assert.equal(annaTries.status, 303);
    assert.match(
      annaTries.headers.get('location') ?? '',
      /latchkey_error=not_connected/,
      'acts on anna only',
    );
    // Bob's token with anna's cookie, anna's token with bob's cookie: refused both ways.
    assert.equal((await e.post(path, { cookie: anna.cookie, csrf: bob.csrf })).status, 403);
    assert.equal((await e.post(path, { cookie: bob.cookie, csrf: anna.csrf })).status, 403);
    // No parameter names a subject: a query naming bob changes nothing.
    assert.equal((await e.post(`${path}?subject=bob`, anna)).status, 303);
    const still = await e.token('bob');
    assert.equal(still.status, 200);
    assert.equal(still.body['access_token'], bobToken);
    assert.equal((await e.as.introspect(bobToken)).active, true, "bob's token is untouched at the AS");
    // Connect from anna's session starts a flow for anna, whoever signs in at the AS.
    const connect = await e.post('/portal/connections/demo/connect', anna);
    assert.equal(connect.status, 200);
    const target = /http-equiv="refresh" content="0;url=([^"]+)"/.exec(await connect.text())?.[1];
    assert.ok(target !== undefined);
    const callback = await completeAuthorization(target.replaceAll('&#38;', '&'), {
      subject: 'someone-at-as',
    });
    const back = await fetch(callback, { redirect: 'manual' });
    assert.equal(new URL(back.headers.get('location') ?? '').pathname, '/');
    assert.equal(
      (await e.as.introspect(String((await e.token('anna')).body['access_token']))).sub,
      'someone-at-as',
    );
    assert.equal((await e.token('bob')).body['access_token'], bobToken, "bob's connection is still his");
  });

  it('escapes what it shows, and its notice only names configured upstreams', async () => {
    const visitor = await e.visit('jill');
    const hostile = '<script>alert(1)</script>';
    const query = new URLSearchParams({
      latchkey_status: 'error',
      latchkey_upstream: 'demo',
      latchkey_error: hostile,
    });
    const page = await (
      await fetch(`${e.serve.url}/?${query}`, { headers: { cookie: visitor.cookie } })
    ).text();
    assert.ok(!page.includes(hostile));
    assert.ok(page.includes('&#60;script&#62;alert(1)&#60;/script&#62;'));
    const unknown = new URLSearchParams({ latchkey_status: 'connected', latchkey_upstream: 'evil' });
    const other = await (
      await fetch(`${e.serve.url}/?${unknown}`, { headers: { cookie: visitor.cookie } })
    ).text();
    assert.ok(!other.includes('class="notice'), 'no notice for an upstream that is not configured');
  });

  it('signing out ends the session on every instance', async () => {
    const visitor = await e.visit('kim');
    const second = await e.instance();
    try {
      assert.equal(
        (await fetch(`${second.url}/`, { headers: { cookie: visitor.cookie } })).status,
        200,
        'any instance serves the session',
      );
      const out = await e.post('/portal/sign-out', visitor);
      assert.equal(out.status, 200);
      assert.match(out.headers.get('set-cookie') ?? '', /Max-Age=0/);
      assert.equal((await fetch(`${second.url}/`, { headers: { cookie: visitor.cookie } })).status, 401);
    } finally {
      await second.close();
    }
  });

  it('the log holds no ticket, cookie or token', () => {
    const all = e.logLines.join('\n');
    assert.ok(e.logLines.some((l) => l.includes('"path":"/portal/open"')));
    for (const secret of e.secretsSeen.filter((s) => s.length > 8)) {
      assert.ok(!all.includes(secret), `a secret leaked into the log: ${secret.slice(0, 6)}…`);
    }
  });
});
