/**
 * Issue 14, points 1 and 2: words from hostile servers (terminal escapes, a fake "Logged in
 * OK" line, megabytes of filler, echoed secrets) never reach a terminal, the store, the log or
 * the host as they were sent. Every server here is real (oidc-provider, the SDK's MCP server)
 * behind a front on 127.0.0.1 that answers some requests itself, with what it was sent.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import { openSqliteStore } from '../../src/store/sqlite.js';
import { type EchoFront, type EchoRequest, startEchoFront } from '../harness/echo-front.js';
import {
  startAuthorizationServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { spawnRawHost } from '../support/raw-host.js';
import { loginInto } from '../support/seed-credential.js';
import { latchkey } from '../support/spawn-cli.js';

const HEADLESS_BROWSER = fileURLToPath(new URL('../fixtures/headless-browser.ts', import.meta.url));

/** OSC 52 (write the clipboard), CSI 2J (clear the screen), a forged success line, a bidi override. */
const HOSTILE =
  'nope\u001b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\u0007\u001b[2J\u001b[H\r\nLogged in OK\n\u202eevil';

/** Any control character but the newline that ends a line of output, or a bidi control. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

const FIVE_MB = 5 * 1024 * 1024;

function oauthError(description: string): { status: number; body: string } {
  return { status: 400, body: JSON.stringify({ error: 'invalid_grant', error_description: description }) };
}

function isTokenRequest(request: EchoRequest, grant: string): boolean {
  return (
    request.method === 'POST' &&
    request.path === '/token' &&
    new URLSearchParams(request.body).get('grant_type') === grant
  );
}

function assertNoControls(text: string, what: string): void {
  const at = CONTROL.exec(text);
  assert.equal(at, null, `${what} holds U+${at?.[0].codePointAt(0)?.toString(16)}: ${JSON.stringify(text)}`);
  assert.doesNotMatch(text, /^Logged in OK/m, `${what} carries the forged line as a line of its own`);
}

describe('hostile servers: no terminal escapes and no secrets in any network text', () => {
  let asFront: EchoFront;
  let mcpFront: EchoFront;
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  const homes: string[] = [];

  async function freshEnv(): Promise<Record<string, string>> {
    const home = await mkdtemp(join(tmpdir(), 'latchkey-hostile-'));
    homes.push(home);
    return { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
  }

  /** A credential for the MCP server straight from the AS (no login UI); returns its tokens. */
  async function seed(env: Record<string, string>): Promise<{ accessToken: string; refreshToken: string }> {
    const store = await openSqliteStore({
      home: env['LATCHKEY_HOME'] ?? '',
      env: { ...process.env, ...env },
    });
    await loginInto(store, as, mcp.url, { asUser: 'hostile-test' });
    const [cred] = await store.listCredentials({ server: mcp.url });
    await store.close();
    assert.ok(cred?.secrets.refreshToken !== undefined);
    return { accessToken: cred.secrets.accessToken, refreshToken: cred.secrets.refreshToken };
  }

  /** Refresh is due once the 2-second access token has expired. */
  const expire = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 2500));

  async function storeBytes(env: Record<string, string>): Promise<Buffer> {
    const home = env['LATCHKEY_HOME'] ?? '';
    const parts = await Promise.all(
      ['latchkey.db', 'latchkey.db-wal'].map((name) =>
        readFile(join(home, name)).catch(() => Buffer.alloc(0)),
      ),
    );
    return Buffer.concat(parts);
  }

  before(async () => {
    asFront = await startEchoFront();
    mcpFront = await startEchoFront();
    as = await startAuthorizationServer({ frontedBy: asFront, accessTokenTtl: 2 });
    mcp = await startMcpServer({ authorizationServer: as, frontedBy: mcpFront });
  });
  after(async () => {
    await mcp.close();
    await as.close();
    await mcpFront.close();
    await asFront.close();
    await Promise.all(homes.map((home) => rm(home, { recursive: true, force: true })));
  });

  it('login: an error_description with OSC 52, CSI 2J and a fake success line reaches stderr inert', async () => {
    const env = await freshEnv();
    asFront.answer = (r) => (isTokenRequest(r, 'authorization_code') ? oauthError(HOSTILE) : undefined);
    try {
      const run = await latchkey(['login', mcp.url, '--browser'], { ...env, BROWSER: HEADLESS_BROWSER });
      assert.notEqual(run.code, 0, run.stderr);
      assert.ok(asFront.answered > 0, 'the hostile answer was given');
      assert.match(run.stderr, /invalid_grant/);
      assertNoControls(run.stderr, 'login stderr');
      assert.ok(!run.stderr.includes('52;c;'), 'no clipboard payload');
    } finally {
      asFront.answer = undefined;
    }
  });

  it('login: a 5 MB error_description is shown capped', async () => {
    const env = await freshEnv();
    const filler = 'A'.repeat(FIVE_MB);
    const answered = asFront.answered;
    asFront.answer = (r) => (isTokenRequest(r, 'authorization_code') ? oauthError(filler) : undefined);
    try {
      const run = await latchkey(['login', mcp.url, '--browser'], { ...env, BROWSER: HEADLESS_BROWSER });
      assert.notEqual(run.code, 0, run.stderr.slice(0, 2000));
      assert.ok(run.stderr.length < 10_000, `stderr is ${run.stderr.length} characters`);
      // Not a pass by accident: the 5 MB answer was given, and it is what was refused.
      assert.equal(asFront.answered, answered + 1, 'the 5 MB answer was given');
      assert.match(run.stderr, /past the \d+-byte limit/, run.stderr.slice(0, 2000));
    } finally {
      asFront.answer = undefined;
    }
  });

  it('refresh: an AS echoing the refresh token with escapes leaves neither in the store nor in status', async () => {
    const env = await freshEnv();
    const { refreshToken } = await seed(env);
    await expire();
    const echoed: string[] = [];
    asFront.answer = (r) => {
      if (!isTokenRequest(r, 'refresh_token')) return undefined;
      const sent = new URLSearchParams(r.body).get('refresh_token') ?? '';
      echoed.push(sent);
      return oauthError(`${HOSTILE} the refresh token ${sent} is not valid`);
    };
    let token;
    try {
      token = await latchkey(['token', mcp.url], env);
    } finally {
      asFront.answer = undefined;
    }
    assert.deepEqual(echoed, [refreshToken], 'the AS echoed the stored refresh token');
    assert.equal(token.code, 4, token.stderr);
    assertNoControls(token.stderr, 'token stderr');
    assert.ok(!token.stderr.includes(refreshToken), 'stderr names the token');

    const bytes = await storeBytes(env);
    assert.ok(!bytes.includes(refreshToken), 'the refresh token is in the store in clear');
    // Not a lone ESC byte: the sealed secrets are random bytes and hold some.
    assert.ok(!bytes.includes('\u001b[2J'), 'the screen-clearing sequence is in the store');
    assert.ok(!bytes.includes('52;c;Y3VybCBldmls'), 'the clipboard payload is in the store');

    const human = await latchkey(['status'], env);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /needs-login/);
    assertNoControls(human.stdout, 'status');
    assert.ok(!human.stdout.includes(refreshToken), 'status prints the refresh token');

    const json = await latchkey(['status', '--json'], env);
    assert.ok(!json.stdout.includes(refreshToken), 'status --json prints the refresh token');
    const report = JSON.parse(json.stdout) as { credentials: { lastError?: string }[] };
    const lastError = report.credentials[0]?.lastError;
    assert.ok(lastError !== undefined && lastError.includes('invalid_grant'), json.stdout);
    assertNoControls(lastError, 'status --json lastError');
    assert.match(lastError, /\[redacted #[0-9a-f]{10}\]/, 'the token is named by its fingerprint');

    const events = await latchkey(['events', mcp.url], env);
    assertNoControls(events.stdout, 'events');
    assert.ok(!events.stdout.includes(refreshToken), 'events print the refresh token');
  });

  it('refresh: an error code carrying escapes is stored, shown and logged as an event inert', async () => {
    const env = await freshEnv();
    await seed(env);
    await expire();
    asFront.answer = (r) =>
      isTokenRequest(r, 'refresh_token')
        ? { status: 400, body: JSON.stringify({ error: `bad_request${HOSTILE}` }) }
        : undefined;
    let token;
    try {
      token = await latchkey(['token', mcp.url], env);
    } finally {
      asFront.answer = undefined;
    }
    assert.notEqual(token.code, 0);
    assertNoControls(token.stderr, 'token stderr');
    const report = JSON.parse((await latchkey(['status', '--json'], env)).stdout) as {
      credentials: { state: string; lastError?: string }[];
    };
    assert.equal(report.credentials[0]?.state, 'needs-login');
    assert.match(report.credentials[0]?.lastError ?? '', /bad_request/);
    assertNoControls(report.credentials[0]?.lastError ?? '', 'status --json lastError');
    const events = await latchkey(['events', mcp.url], env);
    assert.match(events.stdout, /needs-login .* error=bad_request/);
    assertNoControls(events.stdout, 'events');
  });

  it('refresh: a 5 MB error_description is stored and shown capped', async () => {
    const env = await freshEnv();
    await seed(env);
    await expire();
    const filler = 'B'.repeat(FIVE_MB);
    const answered = asFront.answered;
    asFront.answer = (r) => (isTokenRequest(r, 'refresh_token') ? oauthError(filler) : undefined);
    let token;
    try {
      token = await latchkey(['token', mcp.url], env);
    } finally {
      asFront.answer = undefined;
    }
    assert.notEqual(token.code, 0);
    assert.equal(asFront.answered, answered + 1, 'the 5 MB answer was given');
    assert.match(token.stderr, /past the \d+-byte limit/, 'and it is what was refused');
    assert.ok(token.stderr.length < 10_000, `stderr is ${token.stderr.length} characters`);
    assert.ok(
      !(await storeBytes(env)).includes('B'.repeat(10_000)),
      'the description landed whole in the store',
    );
    const json = await latchkey(['status', '--json'], env);
    assert.ok(json.stdout.length < 10_000, `status --json is ${json.stdout.length} characters`);
  });

  it('`latchkey tools`: tool names and descriptions from the server reach the terminal inert', async () => {
    const env = await freshEnv();
    await seed(env);
    mcpFront.answer = (r) => {
      if (r.method !== 'POST' || !r.body.includes('"tools/list"')) return undefined;
      const { id } = JSON.parse(r.body) as { id: unknown };
      const tool = { name: 'wipe\u001b[2J', description: HOSTILE, inputSchema: { type: 'object' } };
      return { status: 200, body: JSON.stringify({ jsonrpc: '2.0', id, result: { tools: [tool] } }) };
    };
    let run;
    try {
      run = await latchkey(['tools', mcp.url], env);
    } finally {
      mcpFront.answer = undefined;
    }
    assert.equal(run.code, 0, run.stderr);
    assertNoControls(run.stdout, '`latchkey tools` output');
    assert.match(run.stdout, /^wipe +nope/m);
  });

  it('`latchkey doctor`: metadata from the server reaches the terminal inert', async () => {
    const env = await freshEnv();
    const answered = mcpFront.answered;
    mcpFront.answer = (r) =>
      r.method === 'GET' && r.path.startsWith('/.well-known/oauth-protected-resource')
        ? {
            status: 200,
            body: JSON.stringify({
              resource: mcp.url,
              authorization_servers: [`${as.issuer}/\u001b]52;c;Y3VybA==\u0007\u001b[2J`],
            }),
          }
        : undefined;
    let run;
    try {
      run = await latchkey(['doctor', mcp.url], env);
    } finally {
      mcpFront.answer = undefined;
    }
    assert.ok(mcpFront.answered > answered, 'the hostile metadata was served');
    assertNoControls(run.stdout, '`latchkey doctor` output');
    assertNoControls(run.stderr, '`latchkey doctor` stderr');
  });

  describe('an MCP server that echoes the bearer token and the --header value in its 401 body', () => {
    const apiKey = `key-${randomBytes(16).toString('hex')}`;
    const seen: string[] = [];

    before(() => {
      mcpFront.answer = (r) => {
        const authorization = r.headers.authorization;
        if (r.method !== 'POST' || authorization === undefined) return undefined;
        const token = authorization.replace(/^Bearer /i, '');
        seen.push(token);
        return {
          status: 401,
          headers: { 'www-authenticate': 'Bearer error="invalid_token"', 'content-type': 'text/plain' },
          // Raw text, so the escape reaches latchkey as a real ESC character.
          body: `\u001b[2Jtoken ${token} and key ${String(r.headers['x-api-key'])} refused\r\nLogged in OK`,
        };
      };
    });
    after(() => {
      mcpFront.answer = undefined;
    });

    function assertClean(text: string, what: string): void {
      assert.ok(seen.length > 0, 'the server saw a token');
      for (const token of seen) assert.ok(!text.includes(token), `${what} holds the bearer token`);
      assert.ok(!text.includes(apiKey), `${what} holds the --header value`);
    }

    it('`latchkey call` prints neither', async () => {
      const env = await freshEnv();
      await seed(env);
      const run = await latchkey(
        ['call', mcp.url, 'echo', '{"text":"x"}', '--header', 'X-Api-Key: ${LK_API_KEY}'],
        {
          ...env,
          LK_API_KEY: apiKey,
        },
      );
      assert.notEqual(run.code, 0);
      assert.match(run.stderr, /401/);
      assertClean(run.stdout + run.stderr, '`latchkey call` output');
      assertNoControls(run.stderr, '`latchkey call` stderr');
    });

    it('the proxy relays neither to the host, nor writes them to its log', async () => {
      const env = await freshEnv();
      await seed(env);
      const host = spawnRawHost([mcp.url, '--header', 'X-Api-Key: ${LK_API_KEY}'], {
        ...env,
        LK_API_KEY: apiKey,
      });
      try {
        const answer = await host.request(
          'initialize',
          {
            protocolVersion: LATEST_PROTOCOL_VERSION,
            capabilities: {},
            clientInfo: { name: 'hostile-test', version: '1.0.0' },
          },
          30_000,
        );
        assert.ok(answer.error !== undefined, JSON.stringify(answer));
        assert.match(answer.error.message, /401/);
        const relayed = JSON.stringify(answer);
        assertClean(relayed, 'the JSON-RPC error');
        assertNoControls(answer.error.message, 'the JSON-RPC error message');
        assertNoControls(JSON.stringify(answer.error.data), 'the JSON-RPC error data');
        assertClean(host.stderr(), 'the proxy log');
        assert.deepEqual(host.junk, []);
      } finally {
        await host.close();
      }
    });
  });
});
