import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { type Host, proxyEnv, type ProxyEnv, text } from '../support/proxy-env.js';

const BROWSER = fileURLToPath(new URL('../fixtures/counting-browser.ts', import.meta.url));

async function launches(file: string): Promise<string[]> {
  const log = await readFile(file, 'utf8').catch(() => '');
  return log.split('\n').filter(Boolean);
}

describe('latchkey proxy: duplicate spawns for one server', () => {
  let env: ProxyEnv;
  before(async () => {
    env = await proxyEnv({ accessTokenTtl: 300 });
  });
  after(async () => env.close());

  it('4 proxies started at once with an empty store: 1 browser login, 4 working proxies', async () => {
    const browserLog = join(env.home, 'browser-launches.log');
    const browserEnv = { BROWSER, LK_BROWSER_LOG: browserLog, LK_BROWSER_USER: 'dup-user' };
    const started = Date.now();
    // Each host's initialize is the first request its proxy relays, so each proxy finds it
    // needs a login while the others do too.
    const hosts: Host[] = await Promise.all(
      [0, 1, 2, 3].map(() => env.host(['--browser', '--auth-timeout', '40'], browserEnv)),
    );
    const results = await Promise.all(
      hosts.map((host, i) => host.client.callTool({ name: 'echo', arguments: { text: `dup-${i}` } })),
    );
    const elapsed = Date.now() - started;
    const stderrs = hosts.map((h) => h.stderr()).join('\n----\n');

    assert.deepEqual(
      results.map((r) => text(r)),
      ['dup-0', 'dup-1', 'dup-2', 'dup-3'],
    );
    const who = await Promise.all(hosts.map((h) => h.client.callTool({ name: 'whoami', arguments: {} })));
    assert.deepEqual(
      who.map((r) => text(r)),
      ['dup-user', 'dup-user', 'dup-user', 'dup-user'],
      'all four use the one login',
    );
    assert.equal((await launches(browserLog)).length, 1, `browser launches:\n${stderrs}`);
    assert.equal(
      env.as.counters.count('authorization_code'),
      1,
      `one code grant at the AS: ${JSON.stringify(env.as.counters.snapshot())}`,
    );
    assert.equal(env.as.counters.count('authorization_code', 'ok'), 1);
    assert.ok(env.as.counters.count('registration') <= 1, JSON.stringify(env.as.counters.snapshot()));
    assert.equal(new Set(hosts.map((h) => h.pid)).size, 4, 'four distinct proxy processes');
    assert.doesNotMatch(stderrs, /EADDRINUSE/);
    assert.doesNotMatch(stderrs, /address already in use/i);
    assert.ok(elapsed < 30_000, `took ${elapsed} ms`);
    // Exactly one proxy printed the sign-in URL: the one that ran the login.
    const opened = hosts.filter((h) => /Opening the browser to sign in/.test(h.stderr()));
    assert.equal(opened.length, 1, stderrs);

    // The credential in the store is the one they all share.
    const store = await env.openStore();
    const creds = await store.listCredentials({ server: env.url });
    assert.equal(creds.length, 1, 'one credential for the server, not four');
    await Promise.all(hosts.map((h) => h.close()));
  });
});
