/**
 * An AS that forgot the client latchkey registered there (restarted with in-memory storage,
 * purged its DCR clients). Whichever request learns it first (refresh, revocation, the
 * authorization endpoint itself) the registration is evicted and the next login registers
 * again at once, instead of waiting out the login timeout on an error page that never
 * redirects (RFC 6749 §4.1.2.1).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { preflightAuthorization } from '../../src/oauth/authorization-preflight.js';
import { createLoginHook, type LoginOptions } from '../../src/login/login.js';
import { evictRejectedRegistration } from '../../src/oauth/registration.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  completeAuthorization,
  startAuthorizationServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';

/** Logs in over HTTP like a user would; counts the pages it was shown and the ones that failed. */
function headlessBrowser(): NonNullable<LoginOptions['openBrowser']> & { opened: number; failed: number } {
  const open = Object.assign(
    async (url: string) => {
      open.opened++;
      try {
        await fetch(await completeAuthorization(url, { subject: 'alice' }));
      } catch {
        open.failed++; // the AS showed an error page: the user would be stuck here
      }
    },
    { opened: 0, failed: 0 },
  );
  return open;
}

describe('an authorization server that forgot its registered client', () => {
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  const managers: CredentialManager[] = [];

  function manager(
    store: CredentialStore,
    browser: NonNullable<LoginOptions['openBrowser']>,
  ): CredentialManager {
    const m = new CredentialManager({
      store,
      logger: silentLogger,
      // Long enough that a login stuck on the AS's error page could not pass by timing out.
      acquire: createLoginHook({ store, flow: 'browser', openBrowser: browser, timeoutMs: 60_000 }),
    });
    managers.push(m);
    return m;
  }

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300 });
    mcp = await startMcpServer({ authorizationServer: as });
  });
  after(async () => {
    for (const m of managers) m.close();
    await mcp.close();
    await as.close();
  });

  it('the preflight tells a known client (redirect) from a forgotten one (400) without a browser', async () => {
    const store = createMemoryStore();
    await manager(store, headlessBrowser()).getAccessToken(mcp.url);
    const registration = await store.getRegistration(as.issuer);
    assert.ok(registration !== undefined);
    const url = new URL(`${as.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: registration.clientId,
      response_type: 'code',
      redirect_uri: 'http://127.0.0.1:1/callback',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      state: 'x',
    }).toString();
    const known = await preflightAuthorization(url.href);
    assert.equal(known.kind, 'accepted');
    assert.ok(known.kind === 'accepted' && known.status >= 300 && known.status < 400);
    assert.ok(as.forgetRegisteredClients() >= 1);
    const forgotten = await preflightAuthorization(url.href);
    assert.equal(forgotten.kind, 'refused');
  });

  it('login after the AS forgot the client registers again before the browser opens', async () => {
    const store = createMemoryStore();
    const browser = headlessBrowser();
    const m = manager(store, browser);
    await m.getAccessToken(mcp.url);
    const first = await store.getRegistration(as.issuer);
    assert.ok(first !== undefined);
    assert.ok(as.forgetRegisteredClients() >= 1);

    const registrations = as.counters.count('registration', 'ok');
    const token = await m.login(mcp.url);
    assert.equal(token.server, mcp.url);
    const second = await store.getRegistration(as.issuer);
    assert.ok(second !== undefined && second.clientId !== first.clientId, 'a new client was registered');
    assert.equal(as.counters.count('registration', 'ok'), registrations + 1, 'exactly one new registration');
    assert.equal(browser.opened, 2, 'the browser opened once per login, never on the error page');
    assert.equal(browser.failed, 0);
  });

  it('a configured client the AS refuses fails at once with CLIENT_REJECTED naming the server', async () => {
    const store = createMemoryStore();
    const browser = headlessBrowser();
    const m = new CredentialManager({
      store,
      logger: silentLogger,
      acquire: createLoginHook({
        store,
        flow: 'browser',
        openBrowser: browser,
        timeoutMs: 60_000,
        client: { clientId: 'nobody-registered-me' },
      }),
    });
    managers.push(m);
    await assert.rejects(
      m.getAccessToken(mcp.url),
      (e: unknown) =>
        isLatchkeyError(e) &&
        e.code === 'CLIENT_REJECTED' &&
        e.server === mcp.url &&
        /nobody-registered-me/.test(e.message),
    );
    assert.equal(browser.opened, 0, 'no browser for a login that cannot complete');
  });

  it('invalid_client on refresh evicts the registration', async () => {
    const store = createMemoryStore();
    const m = manager(store, headlessBrowser());
    const token = await m.getAccessToken(mcp.url);
    assert.ok((await store.getRegistration(as.issuer)) !== undefined);
    as.forgetRegisteredClients();
    await assert.rejects(
      m.getAccessToken(mcp.url, { rejectedToken: token, interactive: false }),
      (e: unknown) => isLatchkeyError(e) && e.code === 'LOGIN_REQUIRED',
    );
    assert.equal(await store.getRegistration(as.issuer), undefined, 'the dead registration is gone');
    const [cred] = await store.listCredentials();
    assert.equal(cred?.status.state, 'needs-login');
  });

  it('invalid_client on revocation evicts the registration', async () => {
    const store = createMemoryStore();
    const m = manager(store, headlessBrowser());
    await m.getAccessToken(mcp.url);
    as.forgetRegisteredClients();
    const [report] = await m.logout(mcp.url);
    assert.equal(report?.revocation?.refreshToken?.status, 'failed');
    assert.equal(await store.getRegistration(as.issuer), undefined, 'the dead registration is gone');
  });

  it('outside a login, a client the user configured is kept: only the user can fix it', async () => {
    const store = createMemoryStore();
    const base = { issuer: as.issuer, tokenEndpointAuthMethod: 'none' as const, registeredAt: Date.now() };
    await store.putRegistration({ ...base, clientId: 'configured', method: 'pre-registered' });
    assert.equal(await evictRejectedRegistration(store, as.issuer, 'configured'), false);
    assert.equal((await store.getRegistration(as.issuer))?.clientId, 'configured');
    await store.putRegistration({ ...base, clientId: 'newer', method: 'dynamic' });
    assert.equal(await evictRejectedRegistration(store, as.issuer, 'older'), false, 'not the refused one');
    assert.equal(await evictRejectedRegistration(store, as.issuer, 'newer'), true);
    assert.equal(await store.getRegistration(as.issuer), undefined);
  });
});
