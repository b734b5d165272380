import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type * as oauth from 'oauth4webapi';

import type { ClientContext } from '../../src/oauth/client-context.js';
import { revocationFailures, revokeTokens } from '../../src/oauth/revocation.js';
import {
  discover,
  type FaultProxy,
  obtainTokens,
  startAuthorizationServer,
  startFaultProxy,
  type TestAuthorizationServer,
} from '../harness/index.js';
import { publicClientContext } from '../support/public-client.js';
import { refreshAccepted } from '../support/refresh-probe.js';

const SERVER = 'http://127.0.0.1:9/mcp';

describe('revocation (RFC 7009) against a real AS', () => {
  let proxy: FaultProxy;
  let as: TestAuthorizationServer;
  let metadata: oauth.AuthorizationServer;
  let ctx: ClientContext;

  before(async () => {
    proxy = await startFaultProxy();
    as = await startAuthorizationServer({ frontedBy: proxy, accessTokenTtl: 300, resources: [SERVER] });
    metadata = await discover(as.issuer);
    ctx = publicClientContext(metadata, as.clientId);
  });
  after(async () => {
    await as.close();
    await proxy.close();
  });

  /** Whether the AS still honours a refresh token (it rotates it when it does). */
  const refreshable = (refreshToken: string | undefined): Promise<boolean> => {
    assert.ok(refreshToken);
    return refreshAccepted(as.issuer, as.clientId, refreshToken, SERVER);
  };

  it('revokes the refresh token, then the access token, with hints; both are dead at the AS', async () => {
    const tokens = await obtainTokens(as, { resource: SERVER, subject: 'rita' });
    const accessToken = tokens.response.access_token;
    const refreshToken = tokens.response.refresh_token;
    assert.ok(refreshToken);
    as.counters.reset();
    // A pass-through recorder: the requests really go to the AS.
    const hints: string[] = [];
    const recording: typeof fetch = async (input, init) => {
      hints.push(new URLSearchParams(String(init?.body)).get('token_type_hint') ?? '');
      return fetch(input, init);
    };
    const report = await revokeTokens(
      ctx,
      { accessToken, refreshToken },
      { timeoutMs: 10_000, fetch: recording },
    );
    assert.deepEqual(report, {
      endpoint: metadata.revocation_endpoint,
      refreshToken: { status: 'revoked' },
      accessToken: { status: 'revoked' },
    });
    assert.deepEqual(hints, ['refresh_token', 'access_token'], 'refresh token first');
    assert.equal(as.counters.count('revocation', 'ok'), 2);
    assert.equal((await as.introspect(accessToken)).active, false);
    assert.equal(await refreshable(refreshToken), false);
    assert.equal(as.counters.count('refresh_token', 'invalid_grant'), 1);
    assert.deepEqual(revocationFailures(report), []);
  });

  it('only the tokens given are reported', async () => {
    const tokens = await obtainTokens(as, { resource: SERVER, subject: 'rita' });
    const report = await revokeTokens(
      ctx,
      { accessToken: tokens.response.access_token },
      { timeoutMs: 10_000 },
    );
    assert.deepEqual(Object.keys(report).sort(), ['accessToken', 'endpoint']);
    assert.equal((await as.introspect(tokens.response.access_token)).active, false);
  });

  it('a 503 is a retryable failure per token; the report carries no token text', async () => {
    const tokens = await obtainTokens(as, { resource: SERVER, subject: 'rita' });
    const fault = proxy.inject({ path: '/token/revocation', action: { type: 'status', status: 503 } });
    try {
      const report = await revokeTokens(
        ctx,
        { accessToken: tokens.response.access_token, refreshToken: tokens.response.refresh_token },
        { timeoutMs: 10_000 },
      );
      assert.equal(fault.hits, 2, 'both tokens were attempted');
      for (const outcome of [report.refreshToken, report.accessToken]) {
        assert.equal(outcome?.status, 'failed');
        assert.ok(outcome?.status === 'failed' && outcome.retryable);
        assert.ok(outcome?.status === 'failed' && outcome.httpStatus === 503);
        assert.match(outcome?.status === 'failed' ? outcome.reason : '', /503/);
      }
      assert.equal(revocationFailures(report).length, 2);
      const text = JSON.stringify(report);
      assert.ok(!text.includes(tokens.response.access_token));
      assert.ok(!text.includes(tokens.response.refresh_token ?? '\u0000'));
      assert.equal((await as.introspect(tokens.response.access_token)).active, true, 'nothing was revoked');
      proxy.clear(fault);
      assert.equal(await refreshable(tokens.response.refresh_token), true);
    } finally {
      proxy.clear(fault);
    }
  });

  it('a timeout is a retryable failure', async () => {
    const tokens = await obtainTokens(as, { resource: SERVER, subject: 'rita' });
    const fault = proxy.inject({ path: '/token/revocation', action: { type: 'timeout' }, times: 1 });
    try {
      const report = await revokeTokens(
        ctx,
        { refreshToken: tokens.response.refresh_token },
        { timeoutMs: 300 },
      );
      assert.deepEqual(report.refreshToken, {
        status: 'failed',
        reason: 'request timed out',
        retryable: true,
      });
    } finally {
      proxy.clear(fault);
    }
  });

  it('a client the AS does not know: failed, not retryable, with the OAuth error code', async () => {
    const tokens = await obtainTokens(as, { resource: SERVER, subject: 'rita' });
    const report = await revokeTokens(
      publicClientContext(metadata, 'no-such-client'),
      { refreshToken: tokens.response.refresh_token },
      { timeoutMs: 10_000 },
    );
    assert.equal(report.refreshToken?.status, 'failed');
    assert.ok(report.refreshToken?.status === 'failed');
    assert.equal(report.refreshToken.retryable, false);
    assert.equal(report.refreshToken.error, 'invalid_client');
    assert.equal(await refreshable(tokens.response.refresh_token), true);
  });
});

describe('revocation: an AS without a revocation endpoint', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await startAuthorizationServer({ revocation: false, accessTokenTtl: 300, resources: [SERVER] });
  });
  after(() => as.close());

  it('is reported as unsupported for every token, and nothing is sent', async () => {
    const metadata = await discover(as.issuer);
    assert.equal(metadata.revocation_endpoint, undefined);
    const tokens = await obtainTokens(as, { resource: SERVER, subject: 'uma' });
    as.counters.reset();
    const report = await revokeTokens(
      publicClientContext(metadata, as.clientId),
      { accessToken: tokens.response.access_token, refreshToken: tokens.response.refresh_token },
      { timeoutMs: 10_000 },
    );
    assert.equal(report.endpoint, undefined);
    assert.equal(report.refreshToken?.status, 'unsupported');
    assert.equal(report.accessToken?.status, 'unsupported');
    assert.match(
      report.accessToken?.status === 'unsupported' ? report.accessToken.reason : '',
      /no revocation endpoint/,
    );
    assert.deepEqual(revocationFailures(report), [], 'unsupported is final, not a failure to retry');
    assert.deepEqual(as.counters.snapshot(), {});
  });
});
