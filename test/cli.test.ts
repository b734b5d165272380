import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { ExitCode } from '../src/cli/exit-codes.js';
import { main } from '../src/cli/main.js';
import { CredentialManager } from '../src/lifecycle/manager.js';
import { silentLogger } from '../src/log.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { captureIO } from './support/cli-io.js';

describe('cli', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  const server = 'https://mcp.example.com/mcp';
  const accessToken = randomBytes(24).toString('hex');

  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'latchkey-cli-'));
    env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
    const store = await openSqliteStore({ env });
    const manager = new CredentialManager({
      store,
      logger: silentLogger,
      watch: false,
      proactiveRefresh: false,
    });
    await manager.saveAcquired(server, {
      issuer: 'https://as.example.com',
      clientId: 'cli-test',
      requestedAt: Date.now(),
      response: { access_token: accessToken, token_type: 'Bearer', expires_in: 3600 },
    });
    manager.close();
    await store.close();
  });
  after(() => rm(home, { recursive: true, force: true }));

  it('token prints the stored token on stdout only', async () => {
    const io = captureIO(env);
    assert.equal(await main(['token', server], io), ExitCode.OK);
    assert.equal(io.stdout, `${accessToken}\n`);
    assert.equal(io.stderr, '');
  });

  it('token for an unknown server exits LOGIN_REQUIRED, names the server and the next step', async () => {
    const other = 'https://other.example.com/mcp';
    const io = captureIO(env);
    assert.equal(await main(['token', other], io), ExitCode.LOGIN_REQUIRED);
    assert.equal(io.stdout, '');
    assert.match(io.stderr, /other\.example\.com\/mcp/);
    assert.match(io.stderr, /latchkey login https:\/\/other\.example\.com\/mcp/);
    assert.doesNotMatch(io.stderr, /mcp\.example\.com/, 'no other server is mentioned');
  });

  it('status lists credentials without printing any token', async () => {
    const io = captureIO(env);
    assert.equal(await main(['status'], io), ExitCode.OK);
    assert.match(io.stdout, /https:\/\/mcp\.example\.com\/mcp\s+valid\s+expires in/);
    assert.ok(!io.stdout.includes(accessToken) && !io.stderr.includes(accessToken));
    const json = captureIO(env);
    assert.equal(await main(['status', '--json'], json), ExitCode.OK);
    const parsed = JSON.parse(json.stdout) as { credentials: { server: string; state: string }[] };
    assert.deepEqual(
      parsed.credentials.map((c) => [c.server, c.state]),
      [[server, 'valid']],
    );
    assert.ok(!json.stdout.includes(accessToken));
  });

  it('a bad URL and an unknown command are usage errors', async () => {
    const bad = captureIO(env);
    assert.equal(await main(['token', 'not a url'], bad), ExitCode.USAGE);
    assert.match(bad.stderr, /not a valid server URL/);
    const unknown = captureIO(env);
    assert.equal(await main(['frobnicate'], unknown), ExitCode.USAGE);
  });
});
