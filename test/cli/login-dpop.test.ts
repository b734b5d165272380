import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import {
  startAuthorizationServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { captureIO } from '../support/cli-io.js';

const BROWSER = fileURLToPath(new URL('../fixtures/headless-browser.ts', import.meta.url));

/** `latchkey login` where both the MCP server and its AS take DPoP, with and without --no-dpop. */
describe('cli login --no-dpop', () => {
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  const homes: string[] = [];

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300, dpop: true });
    mcp = await startMcpServer({ authorizationServer: as, dpop: true });
    process.env['BROWSER'] = BROWSER;
  });
  after(async () => {
    await mcp.close();
    await as.close();
    for (const home of homes) await rm(home, { recursive: true, force: true });
  });

  /** Log in with `flags` in a fresh home; the stored credential's token type and the token. */
  async function loginWith(flags: string[]): Promise<{ tokenType: string; token: string }> {
    const home = await mkdtemp(join(tmpdir(), 'latchkey-cli-dpop-'));
    homes.push(home);
    const env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
    const io = captureIO(env);
    assert.equal(await main(['login', mcp.url, '--browser', ...flags], io), ExitCode.OK, io.stderr);
    const store = await openSqliteStore({ env });
    const [cred] = await store.listCredentials();
    await store.close();
    assert.ok(cred !== undefined);
    return { tokenType: cred.tokenType, token: cred.secrets.accessToken };
  }

  it('by default the tokens are bound to the store key', async () => {
    const { tokenType, token } = await loginWith([]);
    assert.equal(tokenType, 'DPoP');
    assert.ok((await as.introspect(token))['cnf'] !== undefined, 'the AS bound it to a key');
  });

  it('--no-dpop logs in with bearer tokens', async () => {
    const { tokenType, token } = await loginWith(['--no-dpop']);
    assert.equal(tokenType, 'Bearer');
    const info = await as.introspect(token);
    assert.equal(info.active, true);
    assert.equal(info['cnf'], undefined, 'not bound to any key');
  });
});
