/**
 * `latchkey login` and the proxy start from the server's 401 challenge, as `doctor` does:
 * its `resource_metadata` leads discovery and its `scope` leads scope selection. And `doctor`
 * and `login` judge a server's protected-resource metadata by the same rule, in the same words.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { diagnose } from '../../src/cli/commands/doctor.js';
import { cliMessage } from '../../src/cli/next-step.js';
import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { createLoginHook, type LoginOptions } from '../../src/login/login.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  completeAuthorization,
  startAuthorizationServer,
  type TestAuthorizationServer,
} from '../harness/index.js';
import {
  type QuirkyResourceServer,
  type QuirkyResourceServerOptions,
  startQuirkyResourceServer,
} from '../harness/quirky-resource-server.js';

const browser: NonNullable<LoginOptions['openBrowser']> = async (url) => {
  await fetch(await completeAuthorization(url, { subject: 'alice' }));
};

describe('discovery from the 401 challenge; doctor and login agree', () => {
  let as: TestAuthorizationServer;
  let home: string;
  let env: NodeJS.ProcessEnv;
  const servers: QuirkyResourceServer[] = [];
  const managers: CredentialManager[] = [];

  async function serve(options: Omit<QuirkyResourceServerOptions, 'authorizationServer'>) {
    const server = await startQuirkyResourceServer({ authorizationServer: as, ...options });
    servers.push(server);
    return server;
  }
  function manager(store: CredentialStore, notify?: (text: string) => void): CredentialManager {
    const m = new CredentialManager({
      store,
      logger: silentLogger,
      acquire: createLoginHook({
        store,
        flow: 'browser',
        openBrowser: browser,
        timeoutMs: 60_000,
        ...(notify === undefined ? {} : { notify }),
      }),
    });
    managers.push(m);
    return m;
  }

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300, scopes: ['mcp:tools', 'mcp:admin'] });
    home = await mkdtemp(join(tmpdir(), 'latchkey-challenge-'));
    env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
  });
  after(async () => {
    for (const m of managers) m.close();
    for (const s of servers) await s.close();
    await as.close();
    await rm(home, { recursive: true, force: true });
  });

  it('login follows the challenge to metadata published nowhere else, and asks for its scope', async () => {
    const server = await serve({ challengeScope: 'mcp:tools', scopesSupported: ['mcp:tools', 'mcp:admin'] });
    const store = createMemoryStore();
    const notes: string[] = [];
    const token = await manager(store, (t) => notes.push(t)).login(server.url);
    assert.equal(token.issuer, as.issuer, 'the AS on another origin, named only by that metadata');
    assert.ok(server.requests.includes('/metadata/protected-resource.json'));
    const authorizationUrl = new URL(/https?:\/\/\S+\/auth\?\S+/.exec(notes.join(''))?.[0] ?? 'http://x');
    assert.equal(
      authorizationUrl.searchParams.get('scope'),
      'mcp:tools',
      "the challenge's scope, not all listed",
    );
    const [cred] = await store.listCredentials();
    assert.ok(cred !== undefined);
    assert.equal((await as.introspect(cred.secrets.accessToken)).active, true);
  });

  it('better-auth shape: a PRM naming the origin passes doctor, and login sends the origin as resource', async () => {
    const server = await serve({
      resource: 'origin',
      scopesSupported: ['openid', 'profile', 'email', 'offline_access', 'mcp:tools'],
    });
    const findings = await diagnose(server.url, env);
    assert.deepEqual(
      findings.filter((f) => f.verdict === 'fail'),
      [],
    );
    const prm = findings.find((f) => f.check === 'protected resource metadata');
    assert.equal(prm?.verdict, 'ok');
    assert.match(prm?.detail ?? '', /a parent of .* on the same origin/);
    const scopes = findings.find((f) => f.check === 'scopes');
    assert.equal(scopes?.detail, 'a login requests offline_access mcp:tools', 'no OpenID scopes');

    const store = createMemoryStore();
    await manager(store).login(server.url);
    const [cred] = await store.listCredentials();
    assert.equal(cred?.resource, server.origin);
    const introspection = await as.introspect(cred?.secrets.accessToken ?? '');
    assert.equal(introspection.active, true);
    assert.equal(introspection.aud, server.origin);
  });

  it('a PRM for another resource fails doctor and login alike, in the same words', async () => {
    const mismatched = await serve({ resource: { path: '/m' } });
    const findings = await diagnose(mismatched.url, env);
    const prm = findings.find((f) => f.check === 'protected resource metadata');
    assert.equal(prm?.verdict, 'fail');

    const store = createMemoryStore();
    const error = await manager(store)
      .login(mismatched.url)
      .then(
        () => assert.fail('login must fail'),
        (e: unknown) => e,
      );
    assert.ok(isLatchkeyError(error) && error.code === 'DISCOVERY_FAILED');
    // The CLI words both: doctor's finding is what `latchkey login` prints, next step included.
    assert.equal(prm?.detail, cliMessage(error), 'doctor shows the error login raises');
    assert.match(error.message, /is for resource "http:\/\/127\.0\.0\.1:\d+\/m"/);
  });
});
