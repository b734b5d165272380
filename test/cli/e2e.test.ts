import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { z } from 'zod';

import { openSqliteStore } from '../../src/store/sqlite.js';
import { approveDevice, type TestAuthorizationServer, type TestMcpServer } from '../harness/index.js';
import { type CliEnv, startCliEnv } from '../support/cli-env.js';
import { refreshAccepted } from '../support/refresh-probe.js';
import { latchkey } from '../support/spawn-cli.js';

const CHROMIUM_BROWSER = fileURLToPath(new URL('../fixtures/chromium-browser.ts', import.meta.url));

/** The `status --json` document, as scripts may rely on it. */
const StatusSchema = z.object({
  store: z.object({
    keySource: z.enum(['keyring', 'file', 'env', 'none']),
    insecure: z.boolean(),
    location: z.string(),
  }),
  credentials: z.array(
    z.object({
      server: z.string().url(),
      issuer: z.string().url(),
      subject: z.string(),
      account: z.string().optional(),
      state: z.enum(['valid', 'refresh-due', 'retrying', 'needs-login', 'expired']),
      expiresAt: z.number().optional(),
      refreshable: z.boolean(),
      refreshTokenExpiresAt: z.number().optional(),
      scopes: z.array(z.string()),
      generation: z.number().int().positive(),
      lastRefreshAt: z.number().optional(),
      failures: z.number().int().nonnegative(),
      lastError: z.string().optional(),
      connections: z.array(z.object({ pid: z.number(), host: z.string(), since: z.number() })),
    }),
  ),
});

async function tokenOf(server: string, env: Record<string, string>): Promise<string> {
  const run = await latchkey(['token', server], env);
  assert.equal(run.code, 0, run.stderr);
  return run.stdout.trim();
}

describe('the latchkey binary, end to end', () => {
  let cli: CliEnv;
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  let home: string;
  let env: Record<string, string>;
  before(async () => {
    cli = await startCliEnv({ deviceFlow: true });
    ({ as, mcp, home, env } = cli);
  });
  after(async () => {
    await cli.close();
  });

  it('exit code 4 and the login command when there is no credential', async () => {
    const run = await latchkey(['token', mcp.url], env);
    assert.equal(run.code, 4);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, new RegExp(`latchkey login ${mcp.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });

  it('exit code 2 for usage errors', async () => {
    assert.equal((await latchkey(['token'], env)).code, 2);
    assert.equal((await latchkey(['no-such-command'], env)).code, 2);
    assert.equal((await latchkey(['proxy', mcp.url, '--transport', 'carrier-pigeon'], env)).code, 2);
  });

  it('exit code 5 when the user refuses consent in the browser', async () => {
    const run = await latchkey(['login', mcp.url, '--browser'], {
      ...env,
      BROWSER: CHROMIUM_BROWSER,
      LK_BROWSER_DENY: '1',
    });
    assert.equal(run.code, 5, run.stderr);
    assert.match(run.stderr, new RegExp(mcp.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  });

  it('browser login in headless Chromium, then status, token, events, doctor and logout', async () => {
    const login = await latchkey(['login', mcp.url, '--browser'], {
      ...env,
      BROWSER: CHROMIUM_BROWSER,
      LK_BROWSER_USER: 'e2e-user',
    });
    assert.equal(login.code, 0, login.stderr);
    assert.equal(login.stdout, '', 'login prints nothing on stdout');
    assert.match(login.stderr, /Logged in to /);
    assert.match(login.stderr, /Credential stored in /);

    const human = await latchkey(['status'], env);
    assert.equal(human.code, 0);
    assert.match(
      human.stdout,
      new RegExp(`^${mcp.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} +- +valid +in `, 'm'),
    );

    const json = await latchkey(['status', '--json'], env);
    const report = StatusSchema.parse(JSON.parse(json.stdout));
    assert.equal(report.credentials.length, 1);
    // The credential's subject is the local user on a desktop (design.md), not the AS account.
    assert.equal(report.credentials[0]?.subject, 'local');
    assert.equal(report.credentials[0]?.refreshable, true);

    const token = await latchkey(['token', mcp.url], env);
    assert.equal(token.code, 0, token.stderr);
    const store = await openSqliteStore({ home, env: { ...process.env, ...env } });
    const [cred] = await store.listCredentials({ server: mcp.url });
    await store.close();
    assert.ok(cred !== undefined);
    assert.equal(token.stdout, `${cred.secrets.accessToken}\n`, 'stdout is the token and nothing else');
    const active = await as.introspect(cred.secrets.accessToken);
    assert.equal(active.active, true);
    assert.ok(
      !human.stdout.includes(cred.secrets.accessToken) && !json.stdout.includes(cred.secrets.accessToken),
    );

    const events = await latchkey(['events', mcp.url, '--json'], env);
    assert.equal(events.code, 0);
    const types = events.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { type: string }).type);
    assert.ok(types.includes('acquired'), types.join(','));

    const doctor = await latchkey(['doctor', mcp.url], env);
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    assert.match(doctor.stdout, /^ok +revocation/m);

    const logout = await latchkey(['logout', mcp.url], env);
    assert.equal(logout.code, 0, logout.stderr);
    assert.match(logout.stderr, /Logged out of /);
    assert.equal(
      (await as.introspect(cred.secrets.accessToken)).active,
      false,
      'the access token is revoked',
    );
    assert.ok(cred.secrets.refreshToken !== undefined);
    assert.equal(
      await refreshAccepted(as.issuer, cred.clientId, cred.secrets.refreshToken, mcp.url),
      false,
      'the refresh token is revoked',
    );
    const after = StatusSchema.parse(JSON.parse((await latchkey(['status', '--json'], env)).stdout));
    assert.deepEqual(after.credentials, []);
  });

  it('device login: the code on stderr, approved on "another device"', async () => {
    let approving: Promise<void> | undefined;
    // With openid, the AS issues an ID token: status can name the account at the AS.
    const run = await latchkey(
      ['login', mcp.url, '--device', '--scope', 'mcp:tools openid'],
      env,
      (stderr) => {
        const code = /enter the code:\s+(\S+)/.exec(stderr)?.[1];
        const uri = /open this page on any device:\s+(\S+)/.exec(stderr)?.[1];
        if (code !== undefined && uri !== undefined)
          approving ??= approveDevice(uri, code, { subject: 'device-user' });
      },
    );
    await approving;
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, / as device-user at /);
    const report = StatusSchema.parse(JSON.parse((await latchkey(['status', '--json'], env)).stdout));
    assert.equal(report.credentials[0]?.account, 'device-user');
    assert.match((await latchkey(['status'], env)).stdout, / device-user +valid /);
    assert.equal(report.credentials[0]?.state, 'valid');
    assert.equal(report.credentials[0]?.refreshable, true);
    assert.ok(
      (await as.introspect(await tokenOf(mcp.url, env))).sub === 'device-user',
      "the token is the approving user's",
    );
  });
});
