import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { createLoginHook, type IdpQuirks } from '../../src/login/login.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  completeAuthorization,
  startAuthorizationServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';

/**
 * A refresh sends the RFC 8707 resource the login sent (the metadata's, or an override),
 * not the server URL. Checked on the real AS by the audience of the refreshed token. (That
 * none is sent after a login that sent none is a unit test: this AS cannot tell the two
 * apart.)
 */
describe('resource indicator on refresh', () => {
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  const alias = 'https://api.example.test/mcp-audience';

  before(async () => {
    as = await startAuthorizationServer();
    mcp = await startMcpServer({ authorizationServer: as });
    as.addResource(alias);
  });
  after(async () => {
    await mcp.close();
    await as.close();
  });

  async function loginAndRefresh(quirks: IdpQuirks): Promise<{ login: unknown; refreshed: unknown }> {
    const store = createMemoryStore();
    const manager = new CredentialManager({
      store,
      logger: silentLogger,
      acquire: createLoginHook({
        store,
        flow: 'browser',
        quirks,
        openBrowser: async (url) => void (await fetch(await completeAuthorization(url, { subject: 'ann' }))),
      }),
    });
    try {
      const first = await manager.login(mcp.url);
      const second = await manager.getToken(mcp.url, { rejectedToken: first.token, interactive: false });
      assert.notEqual(second.token, first.token, 'refreshed');
      return {
        login: (await as.introspect(first.token)).aud,
        refreshed: (await as.introspect(second.token)).aud,
      };
    } finally {
      manager.close();
    }
  }

  it('an overridden resource is sent again on refresh', async () => {
    const { login, refreshed } = await loginAndRefresh({ resource: alias });
    assert.deepEqual(login, alias);
    assert.deepEqual(refreshed, alias);
  });

  it('the metadata’s resource by default', async () => {
    const { login, refreshed } = await loginAndRefresh({});
    assert.deepEqual(login, mcp.url);
    assert.deepEqual(refreshed, mcp.url);
  });
});
