import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import {
  startAuthorizationServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { captureIO } from '../support/cli-io.js';
import { proxyEnv } from '../support/proxy-env.js';
import { seedCredential } from '../support/seed-credential.js';
import { latchkey } from '../support/spawn-cli.js';

const BIN = fileURLToPath(new URL('../../bin/latchkey.cjs', import.meta.url));
const BROWSER = fileURLToPath(new URL('../fixtures/recording-browser.ts', import.meta.url));
/** A session bus address nobody answers at: the OS keyring is unreachable. */
const NO_KEYRING = { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/latchkey-test-bus', LATCHKEY_KEY: '' };

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A JWT-shaped ID token; latchkey reads its claims for display only and never verifies them. */
function unsignedJwt(claims: Record<string, unknown>): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none' })}.${part(claims)}.`;
}

/** Run the built command with its stdout pipe already closed by the reader, as `| head -1` does. */
function withClosedStdout(args: readonly string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

async function seededHome(server: string): Promise<{ home: string; env: Record<string, string> }> {
  const home = await mkdtemp(join(tmpdir(), 'latchkey-ux-'));
  const env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
  await seedCredential(env, server);
  return { home, env };
}

describe('what a new user tripped over (issue 13, section 4)', () => {
  const homes: string[] = [];
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300 });
    mcp = await startMcpServer({ authorizationServer: as });
  });
  after(async () => {
    await mcp.close();
    await as.close();
    for (const home of homes) await rm(home, { recursive: true, force: true });
  });
  const freshHome = async (): Promise<string> => {
    const home = await mkdtemp(join(tmpdir(), 'latchkey-ux-'));
    homes.push(home);
    return home;
  };

  it('a reader that closes the pipe early (| head -1) ends the command quietly', async () => {
    const { home, env } = await seededHome('https://mcp.example.com/mcp');
    homes.push(home);
    for (const args of [['--help'], ['status', '--help'], ['events', '--help'], ['status'], ['events']]) {
      const run = await withClosedStdout(args, env);
      assert.doesNotMatch(run.stderr, /EPIPE|Error|at /, `latchkey ${args.join(' ')}: ${run.stderr}`);
      assert.equal(run.code, 0, `latchkey ${args.join(' ')}`);
    }
  });

  it('events on an empty log says "no events yet"', async () => {
    const home = await freshHome();
    const env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
    const missing = captureIO(env);
    assert.equal(await main(['events'], missing), ExitCode.OK);
    assert.equal(missing.stdout, '');
    assert.match(missing.stderr, /^no events yet\n$/);
    await (await openSqliteStore({ env })).close(); // a store that exists, with an empty log
    const empty = captureIO(env);
    assert.equal(await main(['events', '--json'], empty), ExitCode.OK);
    assert.equal(empty.stdout, '', '--json output stays empty (no prose on stdout)');
    assert.match(empty.stderr, /no events yet/);
  });

  it('call rejects malformed JSON arguments with exit 2 before connecting', async () => {
    let requests = 0;
    const server = createServer((_req, res) => {
      requests += 1;
      res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
    try {
      const { home, env } = await seededHome(url);
      homes.push(home);
      for (const bad of ['{"text": hi}', '[1, 2]']) {
        const io = captureIO(env);
        assert.equal(await main(['call', url, 'echo', bad], io), ExitCode.USAGE, io.stderr);
        assert.match(io.stderr, /not JSON|must be a JSON object/);
      }
      assert.equal(requests, 0, 'nothing reached the server');
    } finally {
      server.close();
    }
  });

  it('login accepts --disable-resource-parameter, as proxy does', async () => {
    const home = await freshHome();
    const urls = join(home, 'browser-urls');
    const env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
    const browserEnv = { BROWSER, LK_BROWSER_URLS: urls };
    const plain = await latchkey(['login', mcp.url, '--browser'], { ...env, ...browserEnv });
    assert.equal(plain.code, ExitCode.OK, plain.stderr);
    const without = await latchkey(['login', mcp.url, '--browser', '--disable-resource-parameter'], {
      ...env,
      ...browserEnv,
    });
    assert.equal(without.code, ExitCode.OK, without.stderr);
    const [first, second] = readFileSync(urls, 'utf8')
      .trim()
      .split('\n')
      .map((u) => new URL(u));
    assert.equal(first?.searchParams.get('resource'), mcp.url, 'by default the resource is sent');
    assert.equal(second?.searchParams.has('resource'), false, '--disable-resource-parameter drops it');
  });

  it('proxy accepts --no-resource, as login does', async () => {
    const penv = await proxyEnv();
    try {
      const urls = join(penv.home, 'browser-urls');
      const host = await penv.host(['--no-resource', '--browser'], { BROWSER, LK_BROWSER_URLS: urls });
      const tools = await host.client.listTools();
      assert.ok(tools.tools.length > 0);
      const [url] = readFileSync(urls, 'utf8')
        .trim()
        .split('\n')
        .map((u) => new URL(u));
      assert.ok(url !== undefined, host.stderr());
      assert.equal(url.searchParams.has('resource'), false, host.stderr());
    } finally {
      await penv.close();
    }
  });

  it('read-only commands create no store directory, database or key', async () => {
    const parent = await freshHome();
    const home = join(parent, 'latchkey');
    const env = { LATCHKEY_HOME: home };
    const runs: [string[], number, RegExp][] = [
      [['status'], ExitCode.OK, /no credentials yet/],
      [['status', '--json'], ExitCode.OK, /"credentials": \[\]/],
      [['events'], ExitCode.OK, /no events yet/],
      [['token', mcp.url], ExitCode.LOGIN_REQUIRED, /latchkey login/],
      [['tools', mcp.url], ExitCode.LOGIN_REQUIRED, /latchkey login/],
      [['call', mcp.url, 'echo', '{}'], ExitCode.LOGIN_REQUIRED, /latchkey login/],
      [['logout', '--all'], ExitCode.OK, /nothing to do/],
      [['reconnect'], ExitCode.OK, /nothing to do/],
      [['login', 'not a url'], ExitCode.USAGE, /not a URL/],
      [['doctor', mcp.url], ExitCode.OK, /store: .*not created yet/],
    ];
    for (const [args, code, said] of runs) {
      const io = captureIO(env);
      assert.equal(await main(args, io), code, `latchkey ${args.join(' ')}: ${io.stderr}`);
      assert.match(io.stdout + io.stderr, said, `latchkey ${args.join(' ')}`);
      assert.equal(existsSync(home), false, `latchkey ${args.join(' ')} created ${home}`);
    }
  });

  it('the key-in-a-file warning is said once per store; doctor keeps saying it', async () => {
    const home = await freshHome();
    const env = { ...NO_KEYRING, LATCHKEY_HOME: home, BROWSER, LK_BROWSER_URLS: join(home, 'urls') };
    const warning = /no OS keyring is available/g;
    const first = await latchkey(['login', mcp.url, '--browser'], env);
    assert.equal(first.code, ExitCode.OK, first.stderr);
    assert.equal(first.stderr.match(warning)?.length, 1, first.stderr);
    for (const args of [['status'], ['token', mcp.url], ['login', mcp.url, '--browser']]) {
      const later = await latchkey(args, env);
      assert.equal(later.code, ExitCode.OK, later.stderr);
      assert.doesNotMatch(later.stderr, warning, `latchkey ${args.join(' ')}`);
    }
    const doctor = await latchkey(['doctor', mcp.url], env);
    assert.match(doctor.stdout, /warn\s+store: .*key in a file\n\s+fix: no OS keyring is available/);
    const other = await freshHome(); // another store warns again
    const again = await latchkey(['login', mcp.url, '--browser'], { ...env, LATCHKEY_HOME: other });
    assert.equal(again.stderr.match(warning)?.length, 1, again.stderr);
  });

  it('the ACCOUNT column names who signed in (from an ID token), or "-", never "local"', async () => {
    const home = await freshHome();
    const env = {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: randomBytes(32).toString('base64'),
      BROWSER,
      LK_BROWSER_USER: 'ann.example',
    };
    // No openid asked for: an opaque access token and no ID token, so nothing names the account.
    const opaque = await latchkey(['login', mcp.url, '--browser'], env);
    assert.equal(opaque.code, ExitCode.OK, opaque.stderr);
    let table = await latchkey(['status'], env);
    const row = (out: string) => out.split('\n').find((l) => l.startsWith(mcp.url)) ?? '';
    assert.match(row(table.stdout), new RegExp(`^${escape(mcp.url)} +- +valid +in \\d+ min +yes$`));
    assert.doesNotMatch(table.stdout, /\blocal\b/);
    // With openid the AS sends an ID token, whose sub is the account that signed in.
    const withId = await latchkey(['login', mcp.url, '--browser', '--scope', 'mcp:tools openid'], env);
    assert.equal(withId.code, ExitCode.OK, withId.stderr);
    table = await latchkey(['status'], env);
    assert.match(row(table.stdout), new RegExp(`^${escape(mcp.url)} +ann\\.example +valid `));
    const detail = await latchkey(['status', mcp.url], env);
    assert.match(detail.stdout, /^ {2}account +ann\.example$/m);
    assert.match(detail.stdout, new RegExp(`^  issuer +${escape(as.issuer)}$`, 'm'));
  });

  it('status fits 80 columns, long URLs, accounts and errors included', async () => {
    const home = await freshHome();
    const env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
    const servers = [
      'https://mcp.example.com/mcp',
      'https://mcp.a-rather-long-company-name.example.com/v1/tenants/acme-prod/mcp',
      `https://mcp.example.org/${'very-long-path-segment/'.repeat(5)}mcp`,
    ];
    const store = await openSqliteStore({ env });
    const manager = new CredentialManager({
      store,
      logger: silentLogger,
      watch: false,
      proactiveRefresh: false,
    });
    for (const [i, server] of servers.entries()) {
      await manager.saveAcquired(server, {
        issuer: 'https://login.a-rather-long-identity-provider.example.com/tenant/0000-1111',
        clientId: 'ux-test',
        requestedAt: Date.now(),
        response: {
          access_token: randomBytes(24).toString('hex'),
          token_type: 'Bearer',
          expires_in: 3600,
          refresh_token: randomBytes(24).toString('hex'),
          scope: 'mcp:tools mcp:resources mcp:prompts offline_access openid profile email',
          id_token: unsignedJwt({
            sub: `u${i}`,
            email: `someone.with.a.long.name${i}@a-long-domain.example.com`,
          }),
        },
      });
    }
    const [failing] = await store.listCredentials({ server: servers[1] ?? '' });
    assert.ok(failing !== undefined);
    await store.updateStatus(failing.key, {
      state: 'retrying',
      failures: 3,
      lastError: {
        code: 'AS_UNAVAILABLE',
        message: `the authorization server did not answer the refresh request within 30 s ${'(and more detail) '.repeat(4)}`,
        at: Date.now(),
      },
    });
    manager.close();
    await store.close();
    for (const args of [['status'], ...servers.map((s) => ['status', s])]) {
      const io = captureIO(env);
      assert.equal(await main(args, io), ExitCode.OK, io.stderr);
      const wide = io.stdout.split('\n').filter((l) => l.length > 80);
      assert.deepEqual(wide, [], `latchkey ${args.join(' ')}:\n${io.stdout}`);
    }
    const table = captureIO(env);
    await main(['status'], table);
    assert.match(table.stdout, /^SERVER +ACCOUNT +STATE +EXPIRES +REFRESH$/m);
    assert.ok(table.stdout.includes(`${servers[1]}\n`), 'a URL that fits the terminal is shown whole');
    assert.match(
      table.stdout,
      /^https:\/\/mcp\.example\.com\/mcp +someone/m,
      'a short one stays in its column',
    );
    assert.match(
      table.stdout,
      /^https:\/\/mcp\.example\.org\/very-long.*….*\/mcp$/m,
      'a longer one is cut in the middle',
    );
    assert.match(table.stdout, / +someone\.wi…ample\.com +retrying +in \d+ min +yes$/m);
    assert.match(table.stdout, /did not answer the refresh request/, 'the last error is shown');
  });
});
