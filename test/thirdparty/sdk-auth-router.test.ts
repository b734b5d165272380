import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { spawnHost, text } from '../support/proxy-env.js';
import { startSdkServer, type SdkThirdPartyServer } from './sdk-server.js';
import { SUBJECT } from './sdk-provider.js';
import {
  ageCredential,
  bearerStatus,
  cli,
  doctor,
  fingerprint,
  privateHome,
  rawRefresh,
  refreshStorm,
  storedCredential,
} from './steps.js';

/**
 * Third-party server: the MCP SDK's `mcpAuthRouter` + `requireBearerAuth`, with a provider
 * that rotates single-use refresh tokens and really revokes. The steps run in order on one
 * store, as a user would: login, call, proxy, a refresh across 5 processes, doctor, logout,
 * then a login after the AS forgot its client.
 */
describe('third-party: MCP SDK mcpAuthRouter (rotating refresh tokens, revocation)', () => {
  let server: SdkThirdPartyServer;
  let home: string;
  let env: Record<string, string>;

  before(async () => {
    server = await startSdkServer();
    ({ home, env } = await privateHome());
  });
  after(async () => {
    await server.close();
    await rm(home, { recursive: true, force: true });
  });

  it('login: browser flow in Chromium, dynamic registration, a refresh token stored', async () => {
    const run = await cli(['login', server.url, '--browser'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /Logged in to http:\/\/127\.0\.0\.1:\d+\/mcp/);
    assert.equal(server.provider.registeredClients, 1, 'latchkey registered one client');
    assert.equal(server.provider.counters.count('authorization_code', 'ok'), 1);
    const cred = await storedCredential(env);
    assert.ok(cred?.secrets.refreshToken !== undefined, 'a refresh token is stored');
    assert.equal(server.provider.accessTokenActive(cred.secrets.accessToken), true);
  });

  it('call: a tool runs with the stored token', async () => {
    const run = await cli(['call', server.url, 'whoami'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), SUBJECT);
  });

  it('proxy: an SDK host over stdio lists and calls tools', async () => {
    const host = await spawnHost([server.url], env);
    try {
      const tools = await host.client.listTools();
      assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['echo', 'whoami']);
      const result = await host.client.callTool({ name: 'echo', arguments: { text: 'through the proxy' } });
      assert.equal(text(result), 'through the proxy');

      // The access token dies under the running proxy: one refresh, and the host sees nothing.
      server.provider.expireAccessTokens();
      server.provider.counters.reset();
      const again = await host.client.callTool({ name: 'whoami', arguments: {} });
      assert.equal(text(again), SUBJECT);
      assert.equal(server.provider.counters.count('refresh_token', 'ok'), 1, 'one refresh at the AS');
      assert.equal(server.provider.counters.count('refresh_token', 'invalid_grant'), 0);
    } finally {
      await host.close();
    }
  });

  it('refresh across 5 processes with an expired token: exactly 1 refresh at the AS, rotation respected', async () => {
    server.provider.expireAccessTokens();
    const aged = await ageCredential(env);
    assert.equal(await bearerStatus(server.url, aged.secrets.accessToken), 401, 'the old token is dead');
    server.provider.counters.reset();

    const storm = await refreshStorm(env, server.url);
    assert.deepEqual(storm.errors, [], 'no caller failed');
    assert.equal(storm.tokens.length, 25);
    assert.equal(new Set(storm.tokens).size, 1, 'every caller got the same token');
    assert.notEqual(storm.tokens[0], fingerprint(aged.secrets.accessToken), 'a new one');
    assert.equal(
      server.provider.counters.count('refresh_token'),
      1,
      'exactly one refresh request reached the AS',
    );
    assert.equal(server.provider.counters.count('refresh_token', 'invalid_grant'), 0);
    assert.equal(storm.refreshRequests, 1);

    const after = await storedCredential(env);
    assert.ok(after !== undefined);
    assert.equal(after.generation, aged.generation + 1, 'one new generation');
    assert.notEqual(
      after.secrets.refreshToken,
      aged.secrets.refreshToken,
      'the rotated refresh token is stored',
    );
    assert.equal(server.provider.accessTokenActive(after.secrets.accessToken), true);
    // The spent refresh token really is single-use here (so a second refresh would have failed).
    assert.deepEqual(
      await rawRefresh(`${server.issuer}token`, after.clientId, aged.secrets.refreshToken ?? ''),
      { status: 400, error: 'invalid_grant' },
    );
  });

  it('doctor: exit 0, no failed check, and the resource verdict login acted on', async () => {
    // The reuse probe above revoked the grant (RFC 9700 reuse detection): log in again first.
    assert.equal((await cli(['login', server.url, '--browser'], env)).code, 0);
    const result = await doctor(server.url, env);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      result.findings.filter((f) => f.verdict === 'fail'),
      [],
    );
    assert.equal(result.findings.find((f) => f.check === 'protected resource metadata')?.verdict, 'ok');
    assert.equal(result.findings.find((f) => f.check === 'revocation')?.verdict, 'ok');
    assert.equal(result.findings.find((f) => f.check === 'registration')?.verdict, 'ok');
  });

  it('logout: both tokens are revoked at the AS (the server rejects the access token, the refresh token is dead)', async () => {
    const cred = await storedCredential(env);
    assert.ok(cred?.secrets.refreshToken !== undefined);
    assert.equal(await bearerStatus(server.url, cred.secrets.accessToken), 200, 'valid before logout');
    const run = await cli(['logout', server.url], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /Logged out of/);
    assert.doesNotMatch(run.stderr, /could not be revoked/);
    assert.ok(server.provider.counters.count('revocation', 'ok') >= 1);
    assert.equal(
      await bearerStatus(server.url, cred.secrets.accessToken),
      401,
      'the access token is rejected',
    );
    assert.deepEqual(await rawRefresh(`${server.issuer}token`, cred.clientId, cred.secrets.refreshToken), {
      status: 400,
      error: 'invalid_grant',
    });
    assert.equal(await storedCredential(env), undefined, 'nothing is left in the store');
  });

  it('AS forgets its client, then a refresh: latchkey asks for a new login (CLIENT_REJECTED), never a retry', async () => {
    assert.equal((await cli(['login', server.url, '--browser'], env)).code, 0);
    server.provider.forgetClients();
    server.provider.expireAccessTokens();
    await ageCredential(env);
    server.provider.counters.reset();
    const run = await cli(['token', server.url], env);
    assert.equal(run.code, ExitCode.LOGIN_REQUIRED, run.stderr);
    assert.match(run.stderr, /latchkey login/);
    assert.equal(run.stdout, '', 'no token');
    const cred = await storedCredential(env);
    assert.equal(cred?.status.state, 'needs-login');
    assert.equal(cred.status.lastError?.code, 'CLIENT_REJECTED');
    assert.equal(
      server.provider.counters.count('refresh_token'),
      0,
      'the SDK refused the client before the grant',
    );
  });

  it('after that refused refresh, the next login registers a new client within seconds', async () => {
    const run = await cli(['login', server.url, '--browser'], env, 20_000);
    assert.equal(run.timedOut, false, 'login did not hang');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(server.provider.registeredClients, 1, 'a new client was registered');
    const cred = await storedCredential(env);
    assert.ok(cred !== undefined && server.provider.accessTokenActive(cred.secrets.accessToken));
  });

  it('AS forgets its client: login registers again and succeeds within seconds', async () => {
    // Whatever client latchkey holds now (the previous step's, or none registered if that
    // step failed), the AS no longer knows it.
    server.provider.forgetClients();
    // Generous bound: the defect is a 300 s hang, a working login takes ~4 s.
    const run = await cli(['login', server.url, '--browser'], env, 20_000);
    assert.equal(run.timedOut, false, 'login did not hang');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(server.provider.registeredClients, 1, 'a new client was registered');
    const cred = await storedCredential(env);
    assert.ok(cred !== undefined && server.provider.accessTokenActive(cred.secrets.accessToken));
    assert.equal((await cli(['call', server.url, 'whoami'], env)).stdout.trim(), SUBJECT);
  });
});
