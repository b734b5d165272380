/**
 * The proxy starts its logins from the server's 401 challenge too: a server whose metadata
 * is published only at its challenge URL, naming its origin as the resource (better-auth's
 * shape), with its AS on another origin, is logged in to from inside a real host.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { startQuirkyResourceServer, type QuirkyResourceServer } from '../harness/quirky-resource-server.js';
import { proxyEnv, type ProxyEnv } from '../support/proxy-env.js';

const BROWSER = fileURLToPath(new URL('../fixtures/headless-browser.ts', import.meta.url));

describe('latchkey proxy: discovery from the challenge', () => {
  let env: ProxyEnv;
  let server: QuirkyResourceServer;
  before(async () => {
    env = await proxyEnv({ accessTokenTtl: 300 });
    server = await startQuirkyResourceServer({
      authorizationServer: env.as,
      resource: 'origin',
      scopesSupported: ['openid', 'profile', 'email', 'mcp:tools'],
    });
  });
  after(async () => {
    await env.close();
    await server.close();
  });

  it('logs in through metadata only the challenge names, then relays the host', async () => {
    const host = await env.host(['--browser', '--auth-timeout', '40'], { BROWSER }, server.url);
    await host.client.ping();
    assert.ok(server.requests.includes('/metadata/protected-resource.json'), host.stderr());
    const store = await env.openStore();
    const [cred] = await store.listCredentials({ server: server.url });
    assert.ok(cred !== undefined, host.stderr());
    assert.equal(cred.resource, server.origin, 'the RFC 8707 resource is what the metadata names');
    assert.equal(cred.key.issuer, env.as.issuer);
    assert.equal((await env.as.introspect(cred.secrets.accessToken)).active, true);
    assert.doesNotMatch(host.stderr(), /OAUTH_INVALID_RESPONSE/);
  });
});
