// Issue 13: `latchkey logout` while the AS is down, then the AS back. Real processes all the
// way: the built CLI, a spawned `latchkey proxy`, the real AS behind a fault proxy and the
// real MCP server that introspects the tokens it is sent.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { z } from 'zod';

import type { StoredCredential } from '../../src/credential/model.js';
import { refreshAccepted } from '../support/refresh-probe.js';
import { type ProxyEnv, proxyEnv } from '../support/proxy-env.js';
import { latchkey } from '../support/spawn-cli.js';
import { initializeWithBearer } from '../support/mcp-initialize.js';

const PendingSchema = z.object({
  pendingRevocations: z.array(
    z.object({
      server: z.string().url(),
      issuer: z.string().url(),
      subject: z.string(),
      token: z.enum(['access_token', 'refresh_token']),
      attempts: z.number().int().nonnegative(),
      nextAttemptAt: z.number(),
      expiresAt: z.number(),
      lastError: z.string().optional(),
    }),
  ),
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What the MCP server answers to an initialize carrying `token`: its HTTP status. */
async function mcpStatus(url: string, token: string): Promise<number> {
  const response = await initializeWithBearer(url, token);
  await response.body?.cancel();
  return response.status;
}

function assertNoTokens(text: string, cred: StoredCredential, where: string): void {
  assert.ok(!text.includes(cred.secrets.accessToken), `no access token in ${where}`);
  assert.ok(!text.includes(cred.secrets.refreshToken ?? '\u0000'), `no refresh token in ${where}`);
}

describe('latchkey logout while the authorization server is down', () => {
  let env: ProxyEnv | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  /** Log in to `server`, then `latchkey logout` it with the revocation endpoint answering 503. */
  async function logoutWhileDown(server: string): Promise<{ cred: StoredCredential; stderr: string }> {
    assert.ok(env);
    await env.seedLogin('local', server);
    const [cred] = await (await env.openStore()).listCredentials({ server });
    assert.ok(cred);
    const fault = env.asProxy.inject({
      path: '/token/revocation',
      action: { type: 'status', status: 503 },
    });
    const run = await latchkey(['logout', server], env.env);
    env.asProxy.clear(fault);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /Logged out of .* locally: the tokens are deleted here/);
    assert.match(run.stderr, /revocation is pending; later latchkey runs retry it/i);
    assert.match(run.stderr, /latchkey status/);
    assertNoTokens(run.stdout + run.stderr, cred, 'logout output');
    return { cred, stderr: run.stderr };
  }

  async function pendingNow(): Promise<z.infer<typeof PendingSchema>['pendingRevocations']> {
    assert.ok(env);
    // Read the store directly: a `latchkey status` would itself retry what is due.
    const rows = await (await env.openStore()).listPendingRevocations();
    return rows.map((r) => ({
      server: r.key.server,
      issuer: r.key.issuer,
      subject: r.key.subject,
      token: r.tokenType,
      attempts: r.attempts,
      nextAttemptAt: r.nextAttemptAt,
      expiresAt: r.expiresAt,
    }));
  }

  it('the tokens are revoked at the AS by the first later latchkey run once a retry is due', async () => {
    env = await proxyEnv();
    const { cred } = await logoutWhileDown(env.url);

    // Right after: status shows what is pending, secret-free, within 80 columns.
    const table = await latchkey(['status'], env.env);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /pending revocations/);
    assert.match(table.stdout, /refresh\s+0\s+in \d+ s/);
    const section = table.stdout.slice(table.stdout.indexOf('pending revocations')).trimEnd().split('\n');
    assert.equal(section.length, 4, 'title, header, two rows');
    for (const line of section) assert.ok(line.length <= 80, `fits 80 columns: ${JSON.stringify(line)}`);
    const json = await latchkey(['status', '--json'], env.env);
    const before = PendingSchema.parse(JSON.parse(json.stdout)).pendingRevocations;
    assert.deepEqual(before.map((r) => [r.server, r.token, r.attempts]).sort(), [
      [env.url, 'access_token', 0],
      [env.url, 'refresh_token', 0],
    ]);
    assertNoTokens(table.stdout + json.stdout, cred, 'status');
    // Until a retry goes through, the tokens still work: the problem the issue describes.
    assert.equal(await mcpStatus(env.url, cred.secrets.accessToken), 200);

    // The AS is back. The next latchkey run after the retry falls due revokes both tokens.
    const due = Math.max(...before.map((r) => r.nextAttemptAt));
    await sleep(Math.max(0, due - Date.now()) + 100);
    env.as.counters.reset();
    const later = await latchkey(['status', '--json'], { ...env.env, LATCHKEY_LOG_LEVEL: 'debug' });
    assert.equal(later.code, 0, later.stderr);
    assert.deepEqual(PendingSchema.parse(JSON.parse(later.stdout)).pendingRevocations, []);
    assert.match(later.stderr, /a pending revocation went through/, 'logged (debug level shows info)');

    assert.equal(env.as.counters.count('revocation', 'ok'), 2);
    assert.equal((await env.as.introspect(cred.secrets.accessToken)).active, false);
    assert.equal(await mcpStatus(env.url, cred.secrets.accessToken), 401, 'the MCP server rejects it');
    assert.equal(
      await refreshAccepted(env.as.issuer, env.as.clientId, cred.secrets.refreshToken ?? '', env.url),
      false,
      'refresh token: invalid_grant',
    );
    const events = await latchkey(['events', '--json'], env.env);
    const types = events.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; detail?: Record<string, unknown> })
      .filter((e) => e.type.startsWith('revocation-'));
    assert.deepEqual(
      types.map((e) => [e.type, e.detail?.['outcome'] ?? null]),
      [
        ['revocation-pending', null],
        ['revocation-retried', 'revoked'],
        ['revocation-retried', 'revoked'],
      ],
    );
    assertNoTokens(events.stdout + later.stderr, cred, 'events');
  });

  it('two `latchkey token` runs for another server, started together, send each revocation once', async () => {
    env = await proxyEnv();
    const other = `${new URL(env.url).origin}/other-mcp`;
    env.as.addResource(other);
    await env.seedLogin();
    const { cred } = await logoutWhileDown(other);
    const due = Math.max(...(await pendingNow()).map((r) => r.nextAttemptAt));
    // Slow answers keep both processes' retry passes in flight at once.
    env.asProxy.inject({ path: '/token/revocation', action: { type: 'delay', ms: 400 } });
    await sleep(Math.max(0, due - Date.now()) + 100);
    env.as.counters.reset();

    const runs = await Promise.all([
      latchkey(['token', env.url], { ...env.env, LATCHKEY_LOG_LEVEL: 'debug' }),
      latchkey(['token', env.url], { ...env.env, LATCHKEY_LOG_LEVEL: 'debug' }),
    ]);

    for (const run of runs) {
      assert.equal(run.code, 0, run.stderr);
      assert.ok(run.stdout.trim().length > 20, 'the command did its own job: a token on stdout');
      assertNoTokens(run.stdout + run.stderr, cred, 'token runs');
    }
    assert.equal(env.as.counters.count('revocation'), 2, 'one request per token in all');
    assert.deepEqual(await pendingNow(), []);
    assert.equal((await env.as.introspect(cred.secrets.accessToken)).active, false);
  });

  it('a running latchkey proxy retries on its own, with no new command', async () => {
    env = await proxyEnv();
    // The proxy serves one server; the logout is of another server at the same AS.
    const other = `${new URL(env.url).origin}/other-mcp`;
    env.as.addResource(other);
    await env.seedLogin();
    const host = await env.host();
    const { cred } = await logoutWhileDown(other);
    assert.equal((await pendingNow()).length, 2);

    const deadline = Date.now() + 20_000;
    while ((await pendingNow()).length > 0 && Date.now() < deadline) await sleep(100);

    assert.deepEqual(await pendingNow(), [], 'the proxy drained the queue');
    assert.equal((await env.as.introspect(cred.secrets.accessToken)).active, false);
    assert.equal(
      await refreshAccepted(env.as.issuer, env.as.clientId, cred.secrets.refreshToken ?? '', other),
      false,
    );
    assert.match(host.stderr(), /a pending revocation went through.*kind="refresh_token"/);
    assertNoTokens(host.stderr(), cred, 'the proxy log');
    // The proxy's own connection is untouched by another server's retried revocation.
    assert.ok((await host.client.listTools()).tools.length > 0);
  });
});
