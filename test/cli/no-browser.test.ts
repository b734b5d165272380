import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { RpcErrorCode } from '../../src/mcp/jsonrpc.js';
import { completeAuthorization, type TestMcpServer } from '../harness/index.js';
import { type CliEnv, startCliEnv } from '../support/cli-env.js';
import { proxyEnv, type ProxyEnv } from '../support/proxy-env.js';
import { type RawHost, spawnRawHost } from '../support/raw-host.js';
import { latchkey } from '../support/spawn-cli.js';

/** A BROWSER that does not exist, as in a host that passed a stale or foreign environment. */
const MISSING_BROWSER = '/nonexistent/latchkey-test-browser';

/** Sign in at the test AS and deliver the redirect, as a person opening the URL by hand would. */
async function openByHand(url: string, subject: string): Promise<void> {
  const response = await fetch(await completeAuthorization(url, { subject }));
  await response.body?.cancel();
}

async function waitFor<T>(what: string, probe: () => T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('a browser that cannot be started', () => {
  let cli: CliEnv;
  let mcp: TestMcpServer;
  let home: string;
  before(async () => {
    cli = await startCliEnv({ accessTokenTtl: 300 });
    ({ mcp, home } = cli);
  });
  after(async () => {
    await cli.close();
  });

  // The host that passes neither BROWSER nor DISPLAY: xdg-open finds nothing to open with.
  const xdgOpen = execFileSync('sh', ['-c', 'command -v xdg-open || true'], { encoding: 'utf8' }).trim();
  for (const [what, browser, said] of [
    [
      'a missing program',
      MISSING_BROWSER,
      /could not start a browser: \/nonexistent\/latchkey-test-browser was not found\./,
    ],
    [
      'a program that fails',
      '/bin/false',
      /could not start a browser: \/bin\/false failed with exit code 1\./,
    ],
    ['xdg-open without a display', '', /could not start a browser: xdg-open failed with exit code \d+\./],
  ] as const) {
    const skip = browser === '' && xdgOpen === '' ? 'xdg-open is not installed' : false;
    it(
      `login says so at once (${what}), prints the URL, and still finishes when it is opened by hand`,
      { skip },
      async () => {
        const env = {
          LATCHKEY_HOME: join(home, what.replace(/\W/g, '-')),
          LATCHKEY_KEY: randomBytes(32).toString('base64'),
          BROWSER: browser,
          // No display of any kind, so a missing BROWSER leaves xdg-open nothing to open with.
          DISPLAY: '',
          WAYLAND_DISPLAY: '',
          XDG_CURRENT_DESKTOP: '',
        };
        let stderr = '';
        const run = latchkey(['login', mcp.url, '--browser'], env, (text) => (stderr = text));
        // The login waits up to 5 minutes for the user; the notice must come long before.
        const url = await waitFor('the notice and the URL', () => {
          const match =
            /could not start a browser.*Open this URL yourself to sign in to \S+:\n\n {2}(\S+)\n/s.exec(
              stderr,
            );
          return match?.[1];
        });
        assert.match(stderr, said);
        assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/auth\?/);
        await openByHand(url, 'by-hand-user');
        const done = await run;
        assert.equal(done.code, ExitCode.OK, done.stderr);
        assert.match(done.stderr, /Logged in to /);
      },
    );
  }

  describe('in the proxy', () => {
    let penv: ProxyEnv;
    let host: RawHost | undefined;
    before(async () => {
      penv = await proxyEnv();
    });
    after(async () => {
      await host?.close();
      await penv.close();
    });

    it('answers the host at once with the URL, and the login completes when it is opened by hand', async () => {
      host = spawnRawHost([penv.url, '--browser'], { ...penv.env, BROWSER: MISSING_BROWSER });
      const initialize = {
        protocolVersion: LATEST_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: 'raw-host', version: '1.0.0' },
      };
      // Far below the 300 s login timeout: the answer must not wait for the login.
      const first = await host.request('initialize', initialize, 30_000);
      assert.equal(first.error?.code, RpcErrorCode.AUTH_REQUIRED, JSON.stringify(first));
      const data = (first.error?.data as { latchkey?: { authorizationUrl?: string; retryable?: boolean } })
        .latchkey;
      const url = data?.authorizationUrl;
      assert.ok(url !== undefined, JSON.stringify(first.error));
      assert.equal(data?.retryable, true);
      assert.ok(first.error?.message.includes(url), 'the message itself carries the URL');
      assert.match(host.stderr(), /could not start a browser/);
      // A second request while the login waits gets the same answer, and no second login.
      const again = await host.request('initialize', initialize, 30_000);
      assert.equal(
        (again.error?.data as { latchkey?: { authorizationUrl?: string } }).latchkey?.authorizationUrl,
        url,
      );
      await openByHand(url, 'proxy-by-hand');
      const store = await penv.openStore();
      for (let i = 0; ; i++) {
        if ((await store.listCredentials({ server: penv.url })).length > 0) break;
        if (i > 300) throw new Error(`no credential stored; stderr:\n${host.stderr()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const ok = await host.request('initialize', initialize, 30_000);
      assert.equal(ok.error, undefined, JSON.stringify(ok.error));
      assert.ok(ok.result !== undefined);
      assert.deepEqual(host.junk, [], 'stdout carried MCP messages only');
    });
  });
});
