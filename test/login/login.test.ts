import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { createLoginHook, type LoginOptions } from '../../src/login/login.js';
import { bearerChallenge } from '../../src/oauth/www-authenticate.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { refreshAccepted } from '../support/refresh-probe.js';
import {
  approveDevice,
  completeAuthorization,
  startAuthorizationServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { initializeWithBearer } from '../support/mcp-initialize.js';

/** A browser stand-in: the harness driver logs in over HTTP, then delivers the redirect. */
function headlessBrowser(subject: string): NonNullable<LoginOptions['openBrowser']> & { opened: number } {
  const open = Object.assign(
    async (url: string) => {
      open.opened++;
      const callback = await completeAuthorization(url, { subject });
      await fetch(callback);
    },
    { opened: 0 },
  );
  return open;
}

async function callMcp(mcp: TestMcpServer, token: string): Promise<Response> {
  return initializeWithBearer(mcp.url, token);
}

describe('login end to end: discovery, registration, flow, logout', () => {
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  let store: CredentialStore;
  const managers: CredentialManager[] = [];
  const manager = (options: Omit<LoginOptions, 'store'>): CredentialManager => {
    const m = new CredentialManager({
      store,
      logger: silentLogger,
      acquire: createLoginHook({ store, ...options }),
    });
    managers.push(m);
    return m;
  };

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300, scopes: ['mcp:tools', 'mcp:admin'] });
    mcp = await startMcpServer({ authorizationServer: as, requiredScopes: ['mcp:tools'] });
  });
  after(async () => {
    for (const m of managers) m.close();
    await mcp.close();
    await as.close();
  });

  it('browser: PRM discovery, dynamic registration, PKCE login; the token works at the MCP server', async () => {
    store = createMemoryStore();
    const browser = headlessBrowser('alice');
    const notes: string[] = [];
    const m = manager({ flow: 'browser', openBrowser: browser, notify: (t) => notes.push(t) });
    const token = await m.getAccessToken(mcp.url);
    assert.equal(browser.opened, 1);
    assert.equal((await callMcp(mcp, token)).status, 200);
    const registration = await store.getRegistration(as.issuer);
    assert.equal(registration?.method, 'dynamic', 'registered by DCR, stored per issuer');
    assert.equal(as.counters.count('registration', 'ok') >= 1 || registration !== undefined, true);
    assert.match(notes.join(''), /sign in to http:\/\/127\.0\.0\.1:\d+\/mcp/);
    const [cred] = await store.listCredentials();
    assert.equal(cred?.key.issuer, as.issuer);
    assert.ok(cred?.secrets.refreshToken !== undefined, 'a refresh token was issued');

    // A second login reuses the registration: no new DCR request.
    const registrationsBefore = as.counters.count('registration');
    await m.login(mcp.url);
    assert.equal(as.counters.count('registration'), registrationsBefore);
    assert.equal(browser.opened, 2);
  });

  it('step-up: a 403 insufficient_scope challenge re-authorizes with the union of scopes, no refresh', async () => {
    store = createMemoryStore();
    const browser = headlessBrowser('alice');
    const m = manager({ flow: 'browser', openBrowser: browser });
    const first = await m.getToken(mcp.url);
    assert.deepEqual(
      [...first.scopes].sort(),
      ['mcp:admin', 'mcp:tools'].filter((s) => first.scopes.includes(s)).sort(),
    );
    const refreshesBefore = as.counters.count('refresh_token');
    const challenge = bearerChallenge(
      new Headers({ 'www-authenticate': 'Bearer error="insufficient_scope", scope="mcp:admin"' }),
    );
    assert.ok(challenge !== undefined);
    const stepped = await m.getToken(mcp.url, { challenge });
    assert.ok(stepped.scopes.includes('mcp:admin'), 'the new token carries the challenged scope');
    assert.ok(stepped.scopes.includes('mcp:tools'), 'and keeps the scopes held before');
    assert.equal(
      as.counters.count('refresh_token'),
      refreshesBefore,
      'refresh cannot widen scope: none was tried',
    );
    assert.equal(browser.opened, 2);
  });

  it('device flow: prompt on the notify channel, approval on another device', async () => {
    store = createMemoryStore();
    const prompts: string[] = [];
    const m = manager({
      flow: 'device',
      notify: (text) => {
        prompts.push(text);
        const code = /enter the code:\s+(\S+)/.exec(text)?.[1];
        const uri = /^\s+(http\S+)$/m.exec(text)?.[1];
        if (code !== undefined && uri !== undefined) void approveDevice(uri, code, { subject: 'dave' });
      },
    });
    const token = await m.getAccessToken(mcp.url);
    assert.equal((await callMcp(mcp, token)).status, 200);
    assert.equal(prompts.length, 1);
    assert.match(prompts[0] ?? '', /▀|▄|█/, 'a QR code was drawn');
  });

  it('logout revokes at the AS and deletes locally; the next call needs a login', async () => {
    store = createMemoryStore();
    const m = manager({ flow: 'browser', openBrowser: headlessBrowser('erin') });
    await m.getAccessToken(mcp.url);
    const [cred] = await store.listCredentials();
    assert.ok(cred !== undefined);
    const reports = await m.logout(mcp.url);
    assert.equal(reports.length, 1);
    assert.equal(reports[0]?.deleted, true);
    assert.equal((await as.introspect(cred.secrets.accessToken)).active, false);
    assert.equal(
      await refreshAccepted(as.issuer, cred.clientId, cred.secrets.refreshToken ?? '', mcp.url),
      false,
      'the refresh token is dead at the AS',
    );
    assert.deepEqual(await store.listCredentials(), []);
    await assert.rejects(
      m.getAccessToken(mcp.url, { interactive: false }),
      (e: unknown) => isLatchkeyError(e) && e.code === 'LOGIN_REQUIRED' && e.server === mcp.url,
    );
  });

  it('the storm breaker stops repeated automatic logins after a failure', async () => {
    store = createMemoryStore();
    let opened = 0;
    const m = manager({
      flow: 'browser',
      timeoutMs: 300,
      openBrowser: async () => void opened++, // the user never finishes
    });
    await assert.rejects(
      m.getAccessToken(mcp.url),
      (e: unknown) => isLatchkeyError(e) && e.server === mcp.url,
    );
    await assert.rejects(
      m.getAccessToken(mcp.url),
      (e: unknown) => isLatchkeyError(e) && /not starting another login/.test(e.message),
    );
    assert.equal(opened, 1, 'only one browser tab');
  });
});
