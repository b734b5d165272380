import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { refreshAccepted } from '../support/refresh-probe.js';
import { type TestAuthorizationServer, type TestMcpServer } from '../harness/index.js';
import { type CliEnv, startCliEnv } from '../support/cli-env.js';
import { captureIO } from '../support/cli-io.js';

const BROWSER = fileURLToPath(new URL('../fixtures/headless-browser.ts', import.meta.url));

/** `latchkey login`, `token` and `logout` against the real AS and MCP server. */
describe('cli login / token / logout', () => {
  let cli: CliEnv;
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    cli = await startCliEnv({ accessTokenTtl: 300 });
    ({ as, mcp, env } = cli);
    // The system-browser opener runs $BROWSER directly (no shell) with the URL.
    process.env['BROWSER'] = BROWSER;
  });
  after(async () => {
    await cli.close();
  });

  it('login stores a credential, token prints it, logout revokes it', async () => {
    const io = captureIO(env);
    assert.equal(await main(['login', mcp.url, '--browser'], io), ExitCode.OK, io.stderr);
    assert.equal(io.stdout, '', 'login prints nothing on stdout');
    assert.match(io.stderr, /Logged in to http:\/\/127\.0\.0\.1:\d+\/mcp/);
    assert.doesNotMatch(io.stderr, /issued no refresh token/);

    const tokenIo = captureIO(env);
    assert.equal(await main(['token', mcp.url], tokenIo), ExitCode.OK);
    const token = tokenIo.stdout.trim();
    assert.equal((await as.introspect(token)).active, true);
    assert.ok(!io.stderr.includes(token), 'the token never reaches stderr');

    const store = await openSqliteStore({ env });
    const [cred] = await store.listCredentials();
    await store.close();
    assert.ok(cred?.secrets.refreshToken !== undefined);

    const out = captureIO(env);
    assert.equal(await main(['logout', mcp.url], out), ExitCode.OK, out.stderr);
    assert.match(out.stderr, /Logged out of/);
    assert.equal((await as.introspect(token)).active, false, 'the access token is dead at the AS');
    assert.equal(
      await refreshAccepted(as.issuer, cred.clientId, cred.secrets.refreshToken, mcp.url),
      false,
      'so is the refresh token',
    );

    // logout --all with nothing left is a no-op that says so.
    const none = captureIO(env);
    assert.equal(await main(['logout', '--all'], none), ExitCode.OK);
    assert.match(none.stderr, /nothing to do/);

    assert.equal(await main(['login', mcp.url, '--browser'], captureIO(env)), ExitCode.OK);
    const all = captureIO(env);
    assert.equal(await main(['logout', '--all'], all), ExitCode.OK, all.stderr);
    assert.match(all.stderr, /Logged out of/);

    const after = captureIO(env);
    assert.equal(await main(['token', mcp.url], after), ExitCode.LOGIN_REQUIRED);
    assert.match(
      after.stderr,
      new RegExp(`latchkey login ${mcp.url.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`),
    );
  });
});

describe('cli login without a refresh token', () => {
  it('warns that a new login will be needed at expiry, and says where the credential went', async () => {
    const { mcp, home, env, close } = await startCliEnv({ accessTokenTtl: 300, issueRefreshToken: false });
    try {
      process.env['BROWSER'] = BROWSER;
      const io = captureIO(env);
      assert.equal(await main(['login', mcp.url, '--browser'], io), ExitCode.OK, io.stderr);
      assert.match(io.stderr, /issued no refresh token/);
      assert.match(io.stderr, /offline_access/);
      assert.match(
        io.stderr,
        new RegExp(
          `Credential stored in ${join(home, 'latchkey.db').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`,
        ),
      );
    } finally {
      await close();
    }
  });
});
