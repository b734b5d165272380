import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { spawnHost, text } from '../support/proxy-env.js';
import { type BetterAuthServer, startBetterAuthServer } from './better-auth-server.js';
import {
  ageCredential,
  bearerStatus,
  cli,
  doctor,
  fingerprint,
  privateHome,
  refreshStorm,
  storedCredential,
} from './steps.js';

/**
 * The first login uses no options at all (better-auth must work with the defaults); the
 * others name `offline_access`, the one scope better-auth needs to issue a refresh token, as
 * a careful user would.
 */
const login = (url: string): string[] => ['login', url, '--browser', '--scope', 'offline_access'];

/**
 * Third-party server: better-auth 1.6's `mcp` plugin with its default options (SQLite,
 * email and password, its own login page filled in by Chromium). It has no revocation
 * endpoint and issues refresh tokens only for `offline_access`. The steps run in order on
 * one store: login (default, then with `--scope offline_access`), call, proxy, a refresh
 * across 5 processes, doctor, logout, then a login after the AS forgot its client.
 */
describe('third-party: better-auth mcp plugin (default options)', () => {
  let server: BetterAuthServer;
  let home: string;
  let env: Record<string, string>;

  before(async () => {
    server = await startBetterAuthServer();
    ({ home, env } = await privateHome({
      LK_TP_EMAIL: server.user.email,
      LK_TP_PASSWORD: server.user.password,
    }));
  });
  after(async () => {
    await server.close();
    await rm(home, { recursive: true, force: true });
  });

  it('login with no options: Chromium fills the sign-in form, the credential is stored and works', async () => {
    const run = await cli(['login', server.url, '--browser'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /Logged in to http:\/\/127\.0\.0\.1:\d+\/mcp/);
    // Staying logged in is part of working with the defaults: better-auth issues refresh
    // tokens only for offline_access, which it advertises.
    assert.ok((await storedCredential(env))?.secrets.refreshToken !== undefined, 'a refresh token is stored');
    const call = await cli(['call', server.url, 'whoami'], env);
    assert.equal(call.stdout.trim(), server.userId(), call.stderr);
  });

  it('login with --scope offline_access: Chromium fills the sign-in form, a refresh token is stored', async () => {
    const rowsBefore = server.tokenRows();
    const run = await cli(login(server.url), env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /Logged in to http:\/\/127\.0\.0\.1:\d+\/mcp/);
    assert.equal(server.registeredClients(), 1, 'latchkey registered one client (and reuses it)');
    assert.equal(server.tokenRows(), rowsBefore + 1, 'better-auth issued one grant');
    const cred = await storedCredential(env);
    assert.ok(cred?.secrets.refreshToken !== undefined, 'a refresh token is stored');
    assert.equal(await bearerStatus(server.url, cred.secrets.accessToken), 200);
  });

  it('call: a tool runs with the stored token, as the signed-in user', async () => {
    const run = await cli(['call', server.url, 'whoami'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), server.userId());
  });

  it('proxy: an SDK host over stdio lists and calls tools', async () => {
    const host = await spawnHost([server.url], env);
    try {
      const tools = await host.client.listTools();
      assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['echo', 'whoami']);
      const result = await host.client.callTool({ name: 'echo', arguments: { text: 'through the proxy' } });
      assert.equal(text(result), 'through the proxy');
      assert.equal(text(await host.client.callTool({ name: 'whoami', arguments: {} })), server.userId());

      // The access token dies under the running proxy: one refresh, and the host sees nothing.
      server.expireAccessTokens();
      server.counters.reset();
      const again = await host.client.callTool({ name: 'echo', arguments: { text: 'after expiry' } });
      assert.equal(text(again), 'after expiry');
      assert.equal(server.counters.count('token'), 1, 'one refresh at better-auth');
      assert.equal(server.counters.count('token', '200'), 1);
    } finally {
      await host.close();
    }
  });

  it('refresh across 5 processes with an expired token: exactly 1 refresh at the AS', async () => {
    server.expireAccessTokens();
    const aged = await ageCredential(env);
    assert.equal(await bearerStatus(server.url, aged.secrets.accessToken), 401, 'the old token is dead');
    server.counters.reset();
    const rowsBefore = server.tokenRows();

    const storm = await refreshStorm(env, server.url);
    assert.deepEqual(storm.errors, [], 'no caller failed');
    assert.equal(storm.tokens.length, 25);
    assert.equal(new Set(storm.tokens).size, 1, 'every caller got the same token');
    assert.notEqual(storm.tokens[0], fingerprint(aged.secrets.accessToken), 'a new one');
    assert.equal(server.counters.count('token'), 1, 'exactly one token request reached better-auth');
    assert.equal(server.counters.count('token', '200'), 1);
    assert.equal(server.tokenRows(), rowsBefore + 1, 'and it issued exactly one new grant row');
    assert.equal(storm.refreshRequests, 1);

    const after = await storedCredential(env);
    assert.ok(after !== undefined);
    assert.equal(after.generation, aged.generation + 1, 'one new generation');
    assert.notEqual(
      after.secrets.refreshToken,
      aged.secrets.refreshToken,
      'the rotated refresh token is stored',
    );
    assert.equal(
      await bearerStatus(server.url, after.secrets.accessToken),
      200,
      'the server takes the new token',
    );
  });

  it('doctor: exit 0, no failed check, and the resource verdict login acted on (PRM resource is the origin)', async () => {
    const result = await doctor(server.url, env);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      result.findings.filter((f) => f.verdict === 'fail'),
      [],
    );
    // Login accepts this metadata, so doctor must not fail it (a warning may explain it).
    assert.notEqual(result.findings.find((f) => f.check === 'protected resource metadata')?.verdict, 'fail');
    assert.ok(result.findings.some((f) => f.check === 'protected resource metadata'));
    assert.equal(result.findings.find((f) => f.check === 'registration')?.verdict, 'ok');
    // better-auth has no revocation endpoint: a warning, not a failure.
    assert.equal(result.findings.find((f) => f.check === 'revocation')?.verdict, 'warn');
  });

  it('logout without a revocation endpoint: latchkey says the tokens stay valid, and forgets them', async () => {
    const cred = await storedCredential(env);
    assert.ok(cred !== undefined);
    const run = await cli(['logout', server.url], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stderr,
      /refresh token could not be revoked: .*has no revocation endpoint; it stays valid/,
    );
    assert.match(
      run.stderr,
      /access token could not be revoked: .*has no revocation endpoint; it stays valid/,
    );
    assert.match(run.stderr, /Logged out of/);
    assert.equal(await storedCredential(env), undefined, 'nothing is left in the store');
    // What the note warns about, observed: better-auth cannot be told, so the server still
    // accepts the access token until it expires.
    assert.equal(await bearerStatus(server.url, cred.secrets.accessToken), 200);
  });

  it("AS forgets its client, then a refresh: better-auth drops the client's grants with it, latchkey asks for a new login", async () => {
    assert.equal((await cli(login(server.url), env)).code, 0);
    server.forgetClients();
    server.expireAccessTokens();
    await ageCredential(env);
    server.counters.reset();
    const run = await cli(['token', server.url], env);
    assert.equal(run.code, ExitCode.LOGIN_REQUIRED, run.stderr);
    assert.match(run.stderr, /latchkey login/);
    assert.equal(run.stdout, '', 'no token');
    const cred = await storedCredential(env);
    assert.equal(cred?.status.state, 'needs-login', 'a permanent failure, not a retry');
    // Deleting an oauthApplication cascades to its tokens, so better-auth answers
    // invalid_grant ("invalid refresh token"), not invalid_client.
    assert.equal(cred.status.lastError?.code, 'LOGIN_REQUIRED');
    assert.equal(server.counters.count('token', '401'), 1, 'one refresh request, refused');
  });

  it('AS forgets its client: the next login registers again and succeeds within seconds', async () => {
    // Generous bound: the defect is a 300 s hang, a working login takes ~4 s.
    const run = await cli(login(server.url), env, 20_000);
    assert.equal(run.timedOut, false, 'login did not hang');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(server.registeredClients(), 1, 'a new client was registered');
    const cred = await storedCredential(env);
    assert.ok(cred !== undefined);
    assert.equal(await bearerStatus(server.url, cred.secrets.accessToken), 200);
  });
});
