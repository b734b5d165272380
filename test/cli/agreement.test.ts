/**
 * The commands themselves: `latchkey doctor` and `latchkey login` give the same exit code on
 * a server whose metadata sits only at its challenge URL with a PRM `resource` naming its
 * origin (better-auth's shape), and on one whose PRM names another resource.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { startAuthorizationServer, type TestAuthorizationServer } from '../harness/index.js';
import { startQuirkyResourceServer, type QuirkyResourceServer } from '../harness/quirky-resource-server.js';
import { captureIO } from '../support/cli-io.js';

const BROWSER = fileURLToPath(new URL('../fixtures/headless-browser.ts', import.meta.url));

describe('latchkey doctor and latchkey login agree', () => {
  let as: TestAuthorizationServer;
  let origin: QuirkyResourceServer;
  let sibling: QuirkyResourceServer;
  let home: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300 });
    origin = await startQuirkyResourceServer({
      authorizationServer: as,
      resource: 'origin',
      scopesSupported: ['openid', 'profile', 'email', 'offline_access', 'mcp:tools'],
    });
    sibling = await startQuirkyResourceServer({
      authorizationServer: as,
      resource: { path: '/other' },
      challengeScope: 'mcp:tools',
    });
    home = await mkdtemp(join(tmpdir(), 'latchkey-cli-agree-'));
    env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
    process.env['BROWSER'] = BROWSER;
  });
  after(async () => {
    await origin.close();
    await sibling.close();
    await as.close();
    await rm(home, { recursive: true, force: true });
  });

  it('a PRM naming the origin: doctor exits 0 and login succeeds', async () => {
    const doctor = captureIO(env);
    assert.equal(await main(['doctor', origin.url], doctor), ExitCode.OK, doctor.stdout);
    assert.match(doctor.stdout, /^ok {4}protected resource metadata: .*a parent of/m);
    const login = captureIO(env);
    assert.equal(await main(['login', origin.url, '--browser'], login), ExitCode.OK, login.stderr);
    assert.match(login.stderr, /Logged in to /);
    assert.doesNotMatch(login.stderr, /OAUTH_INVALID_RESPONSE/);
  });

  it('a PRM naming another resource: both exit 1 with the same words', async () => {
    const doctor = captureIO(env);
    assert.equal(await main(['doctor', sibling.url], doctor), ExitCode.ERROR);
    const login = captureIO(env);
    assert.equal(await main(['login', sibling.url, '--browser'], login), ExitCode.ERROR);
    const detail = /^fail {2}protected resource metadata: (.*)$/m.exec(doctor.stdout)?.[1];
    assert.ok(detail !== undefined, doctor.stdout);
    assert.ok(login.stderr.includes(detail), `login said:\n${login.stderr}\ndoctor said:\n${detail}`);
  });
});
