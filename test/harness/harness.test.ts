// Proves the test harness itself: if these pass, a lifecycle test that fails is failing
// because of latchkey, not because the AS, the MCP server or the proxy lied.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import * as oauth from 'oauth4webapi';

import {
  approveDevice,
  completeAuthorization,
  CookieJar,
  discover,
  type FaultProxy,
  insecure,
  obtainTokens,
  startAuthorizationServer,
  startFaultProxy,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from './index.js';
import { closeServer, listenOnLoopback } from '../../src/demo/listen.js';
import { initializeWithBearer } from '../support/mcp-initialize.js';

const client: oauth.Client = { client_id: 'mcp-test-client' };

/** A refresh request as a client would send it; resolves with the status and the parsed body. */
async function refresh(
  as: TestAuthorizationServer,
  refreshToken: string,
  options: { signal?: AbortSignal } = {},
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const metadata = await discover(as.issuer);
  const response = await oauth.refreshTokenGrantRequest(metadata, client, oauth.None(), refreshToken, {
    ...insecure,
    ...options,
  });
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { unparsable: text };
  }
  return { status: response.status, headers: response.headers, body };
}

function stringField(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  assert.equal(typeof value, 'string', `${name} in ${JSON.stringify(body)}`);
  return value as string;
}

describe('authorization server', () => {
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  before(async () => {
    as = await startAuthorizationServer();
    mcp = await startMcpServer({ authorizationServer: as });
  });
  after(async () => {
    await mcp.close();
    await as.close();
  });

  it('code flow + PKCE: tokens are bound to the MCP server URL as resource', async () => {
    as.counters.reset();
    const before = Date.now();
    const tokens = await obtainTokens(as, { resource: mcp.url, subject: 'alice' });
    assert.ok(tokens.requestedAt >= before && tokens.requestedAt <= Date.now());
    assert.equal(tokens.issuer, as.issuer);
    assert.equal(tokens.clientId, 'mcp-test-client');
    assert.equal(tokens.response.token_type, 'Bearer', 'raw response, not normalized');
    assert.equal(tokens.response.expires_in, 10, 'default access-token TTL');
    assert.equal(tokens.response.scope, 'mcp:tools');
    assert.ok(tokens.response.refresh_token, 'refresh token without the offline_access dance');

    const info = await as.introspect(tokens.response.access_token);
    assert.equal(info.active, true);
    assert.equal(info.aud, mcp.url);
    assert.equal(info.sub, 'alice');
    assert.equal(info.client_id, 'mcp-test-client');
    assert.equal(as.counters.count('authorization_code', 'ok'), 1);
    assert.equal(as.counters.count('introspection', 'ok'), 1);
  });

  it('native loopback redirect: any port on 127.0.0.1 is accepted, another path is not', async () => {
    for (const port of [1234, 61999]) {
      const tokens = await obtainTokens(as, {
        resource: mcp.url,
        subject: 'alice',
        redirectUri: `http://127.0.0.1:${port}/callback`,
      });
      assert.ok(tokens.response.access_token);
    }
    await assert.rejects(
      obtainTokens(as, {
        resource: mcp.url,
        subject: 'alice',
        redirectUri: 'http://127.0.0.1:1234/elsewhere',
      }),
      /redirect_uri/,
    );
  });

  it('completeAuthorization: refused consent redirects with access_denied; a kept jar skips login', async () => {
    const metadata = await discover(as.issuer);
    const authorizationUrl = async (): Promise<URL> => {
      const url = new URL(metadata.authorization_endpoint ?? '');
      url.search = new URLSearchParams({
        client_id: as.clientId,
        response_type: 'code',
        redirect_uri: 'http://127.0.0.1:4321/callback',
        scope: 'mcp:tools',
        resource: mcp.url,
        state: 'xyz',
        code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
        code_challenge_method: 'S256',
      }).toString();
      return url;
    };
    const refused = await completeAuthorization(await authorizationUrl(), {
      subject: 'alice',
      consent: false,
    });
    assert.equal(refused.origin, 'http://127.0.0.1:4321');
    assert.equal(refused.searchParams.get('error'), 'access_denied');
    assert.equal(refused.searchParams.get('state'), 'xyz');

    const jar = new CookieJar();
    as.counters.reset();
    const first = await completeAuthorization(await authorizationUrl(), { subject: 'alice', jar });
    assert.ok(first.searchParams.get('code'));
    assert.equal(first.searchParams.get('iss'), as.issuer, 'RFC 9207 iss');
    assert.equal(as.counters.count('submit'), 2, 'login and consent forms');
    as.counters.reset();
    const second = await completeAuthorization(await authorizationUrl(), { subject: 'alice', jar });
    assert.ok(second.searchParams.get('code'));
    // oidc-provider always asks native clients for consent again (native_client_prompt).
    assert.equal(as.counters.count('submit'), 1, 'session kept: consent only, no login');
  });

  it('an unknown resource is refused (RFC 8707 invalid_target)', async () => {
    await assert.rejects(
      obtainTokens(as, { resource: 'http://127.0.0.1:9/not-registered', subject: 'alice' }),
      (error: unknown) =>
        error instanceof oauth.AuthorizationResponseError && error.error === 'invalid_target',
    );
  });

  it('refresh rotates; reusing the consumed token is invalid_grant and revokes the successor', async () => {
    const tokens = await obtainTokens(as, { resource: mcp.url, subject: 'alice' });
    as.counters.reset();
    const first = await refresh(as, tokens.response.refresh_token ?? '');
    assert.equal(first.status, 200);
    const successor = stringField(first.body, 'refresh_token');
    assert.notEqual(successor, tokens.response.refresh_token, 'rotated');
    assert.equal(
      (await as.introspect(stringField(first.body, 'access_token'))).aud,
      mcp.url,
      'resource kept',
    );

    const reuse = await refresh(as, tokens.response.refresh_token ?? '');
    assert.equal(reuse.status, 400);
    assert.equal(reuse.body['error'], 'invalid_grant');
    const afterReuse = await refresh(as, successor);
    assert.equal(afterReuse.body['error'], 'invalid_grant', 'the whole grant was revoked');
    assert.equal((await as.introspect(stringField(first.body, 'access_token'))).active, false);

    assert.equal(as.counters.count('refresh_token'), 3);
    assert.equal(as.counters.count('refresh_token', 'ok'), 1);
    assert.equal(as.counters.count('refresh_token', 'invalid_grant'), 2);
  });

  it('two concurrent refreshes with one token: one ok, one invalid_grant, and the winner is dead too', async () => {
    const tokens = await obtainTokens(as, { resource: mcp.url, subject: 'alice' });
    as.counters.reset();
    const results = await Promise.all([
      refresh(as, tokens.response.refresh_token ?? ''),
      refresh(as, tokens.response.refresh_token ?? ''),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 400]);
    const winner = results.find((r) => r.status === 200);
    assert.equal(
      (await refresh(as, stringField(winner?.body ?? {}, 'refresh_token'))).body['error'],
      'invalid_grant',
    );
    assert.equal(as.counters.count('refresh_token', 'ok'), 1);
    assert.equal(as.counters.count('refresh_token', 'invalid_grant'), 2);
  });

  it('revokeGrantOnReuse: false refuses the consumed token but keeps the grant; rotateRefreshToken: false reuses', async () => {
    const lenient = await startAuthorizationServer({ revokeGrantOnReuse: false, resources: [mcp.url] });
    const fixed = await startAuthorizationServer({ rotateRefreshToken: false, resources: [mcp.url] });
    try {
      const tokens = await obtainTokens(lenient, { resource: mcp.url, subject: 'alice' });
      const first = await refresh(lenient, tokens.response.refresh_token ?? '');
      const reuse = await refresh(lenient, tokens.response.refresh_token ?? '');
      assert.equal(reuse.body['error'], 'invalid_grant');
      assert.equal(
        (await lenient.introspect(stringField(first.body, 'access_token'))).active,
        true,
        'grant alive',
      );
      assert.equal(
        (await refresh(lenient, stringField(first.body, 'refresh_token'))).status,
        200,
        'successor works',
      );
      assert.equal(lenient.counters.count('refresh_token', 'invalid_grant'), 1);

      const fixedTokens = await obtainTokens(fixed, { resource: mcp.url, subject: 'alice' });
      const again = await refresh(fixed, fixedTokens.response.refresh_token ?? '');
      assert.equal(again.body['refresh_token'], fixedTokens.response.refresh_token, 'not rotated');
      assert.equal((await refresh(fixed, fixedTokens.response.refresh_token ?? '')).status, 200);
    } finally {
      await lenient.close();
      await fixed.close();
    }
  });

  it('setAccessTokenTtl applies to tokens issued afterwards, and they really expire', async () => {
    const tokens = await obtainTokens(as, { resource: mcp.url, subject: 'alice' });
    as.setAccessTokenTtl(1);
    try {
      const refreshed = await refresh(as, tokens.response.refresh_token ?? '');
      assert.equal(refreshed.body['expires_in'], 1);
      const accessToken = stringField(refreshed.body, 'access_token');
      assert.equal((await as.introspect(accessToken)).active, true);
      await sleep(2100);
      assert.equal((await as.introspect(accessToken)).active, false, 'expired after its TTL');
      assert.equal(
        (await as.introspect(tokens.response.access_token)).active,
        true,
        'the older 10 s token is not',
      );
    } finally {
      as.setAccessTokenTtl(10);
    }
  });

  it('RFC 7009 revocation of the refresh token kills the grant; revokeGrants() does it server-side', async () => {
    const metadata = await discover(as.issuer);
    const tokens = await obtainTokens(as, { resource: mcp.url, subject: 'alice' });
    as.counters.reset();
    const response = await oauth.revocationRequest(
      metadata,
      client,
      oauth.None(),
      tokens.response.refresh_token ?? '',
      {
        ...insecure,
        additionalParameters: { token_type_hint: 'refresh_token' },
      },
    );
    await oauth.processRevocationResponse(response);
    assert.equal(as.counters.count('revocation', 'ok'), 1);
    assert.equal((await as.introspect(tokens.response.access_token)).active, false);
    assert.equal((await refresh(as, tokens.response.refresh_token ?? '')).body['error'], 'invalid_grant');

    const bob = await obtainTokens(as, { resource: mcp.url, subject: 'bob' });
    const carol = await obtainTokens(as, { resource: mcp.url, subject: 'carol' });
    assert.ok((await as.revokeGrants('bob')) >= 1);
    assert.equal((await as.introspect(bob.response.access_token)).active, false);
    assert.equal((await as.introspect(carol.response.access_token)).active, true, 'only bob was revoked');
    assert.equal((await refresh(as, bob.response.refresh_token ?? '')).body['error'], 'invalid_grant');
    await as.revokeAllGrants();
    assert.equal((await as.introspect(carol.response.access_token)).active, false);
  });

  it('device flow: approval over HTTP, polling at the interval the AS gives', async () => {
    const metadata = await discover(as.issuer);
    as.counters.reset();
    const started = Date.now();
    const da = await oauth.processDeviceAuthorizationResponse(
      metadata,
      client,
      await oauth.deviceAuthorizationRequest(
        metadata,
        client,
        oauth.None(),
        { scope: 'mcp:tools', resource: mcp.url },
        insecure,
      ),
    );
    assert.equal(da.interval, 1, 'the harness adds interval=1 (oidc-provider sends none)');

    const approval = approveDevice(da.verification_uri, da.user_code, { subject: 'dora' });
    let tokens: oauth.TokenEndpointResponse | undefined;
    while (tokens === undefined) {
      await sleep((da.interval ?? 5) * 1000);
      const response = await oauth.deviceCodeGrantRequest(
        metadata,
        client,
        oauth.None(),
        da.device_code,
        insecure,
      );
      try {
        tokens = await oauth.processDeviceCodeResponse(metadata, client, response);
      } catch (error) {
        if (!(error instanceof oauth.ResponseBodyError) || error.error !== 'authorization_pending')
          throw error;
      }
    }
    await approval;
    assert.ok(Date.now() - started < 10_000);
    assert.ok(tokens.refresh_token);
    const info = await as.introspect(tokens.access_token);
    assert.equal(info.sub, 'dora');
    assert.equal(info.aud, mcp.url);
    assert.equal(as.counters.count('device_authorization', 'ok'), 1);
    assert.equal(as.counters.count('device_code', 'ok'), 1);
  });

  it('client credentials (confidential client) and open dynamic registration', async () => {
    const metadata = await discover(as.issuer);
    const service = { client_id: as.serviceClient.clientId };
    const cc = await oauth.processClientCredentialsResponse(
      metadata,
      service,
      await oauth.clientCredentialsGrantRequest(
        metadata,
        service,
        oauth.ClientSecretBasic(as.serviceClient.clientSecret),
        { scope: 'mcp:tools', resource: mcp.url },
        insecure,
      ),
    );
    assert.equal((await as.introspect(cc.access_token)).aud, mcp.url);
    assert.equal(as.counters.count('client_credentials', 'ok'), 1);

    const registered = await oauth.processDynamicClientRegistrationResponse(
      await oauth.dynamicClientRegistrationRequest(
        metadata,
        {
          application_type: 'native',
          token_endpoint_auth_method: 'none',
          redirect_uris: ['http://127.0.0.1/callback'],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
        },
        insecure,
      ),
    );
    const tokens = await obtainTokens(as, {
      resource: mcp.url,
      subject: 'erin',
      clientId: registered.client_id,
    });
    assert.equal((await as.introspect(tokens.response.access_token)).client_id, registered.client_id);
  });
});

describe('MCP server', () => {
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  before(async () => {
    as = await startAuthorizationServer();
    mcp = await startMcpServer({ authorizationServer: as });
  });
  after(async () => {
    await mcp.close();
    await as.close();
  });

  it('serves RFC 9728 metadata at the path-inserted and the root well-known URL', async () => {
    assert.equal(
      mcp.resourceMetadataUrl,
      `${new URL(mcp.url).origin}/.well-known/oauth-protected-resource/mcp`,
    );
    for (const url of [
      mcp.resourceMetadataUrl,
      `${new URL(mcp.url).origin}/.well-known/oauth-protected-resource`,
    ]) {
      const response = await fetch(url);
      assert.equal(response.status, 200);
      const metadata = (await response.json()) as Record<string, unknown>;
      assert.equal(metadata['resource'], mcp.url);
      assert.deepEqual(metadata['authorization_servers'], [as.issuer]);
      assert.deepEqual(metadata['scopes_supported'], ['mcp:tools']);
    }
  });

  it('401 with a resource_metadata challenge without a token; invalid_token with a bad one', async () => {
    const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' };
    const bare = await fetch(mcp.url, init);
    assert.equal(bare.status, 401);
    const challenge = bare.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer /);
    assert.ok(challenge.includes(`resource_metadata="${mcp.resourceMetadataUrl}"`), challenge);
    assert.ok(!challenge.includes('error='), 'no error code when no token was sent (RFC 6750 3.1)');

    const bad = await fetch(mcp.url, { ...init, headers: { ...init.headers, authorization: 'Bearer nope' } });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.equal(mcp.counters.count('auth', 'missing'), 1);
    assert.equal(mcp.counters.count('auth', 'invalid_token'), 1);
  });

  it('a token for another resource is invalid_token here; missing scopes are 403 insufficient_scope', async () => {
    const other = await startMcpServer({ authorizationServer: as, path: '/other' });
    const admin = await startMcpServer({
      authorizationServer: as,
      requiredScopes: ['mcp:tools', 'mcp:admin'],
    });
    try {
      const tokens = await obtainTokens(as, { resource: other.url, subject: 'alice' });
      const headers = {
        authorization: `Bearer ${tokens.response.access_token}`,
        'content-type': 'application/json',
      };
      const wrongAudience = await fetch(mcp.url, { method: 'POST', headers, body: '{}' });
      assert.equal(wrongAudience.status, 401);
      assert.match(wrongAudience.headers.get('www-authenticate') ?? '', /error="invalid_token"/);

      const forAdmin = await obtainTokens(as, { resource: admin.url, subject: 'alice' });
      const forbidden = await fetch(admin.url, {
        method: 'POST',
        headers: { ...headers, authorization: `Bearer ${forAdmin.response.access_token}` },
        body: '{}',
      });
      assert.equal(forbidden.status, 403);
      const challenge = forbidden.headers.get('www-authenticate') ?? '';
      assert.match(challenge, /error="insufficient_scope"/);
      assert.match(challenge, /scope="mcp:tools mcp:admin"/);
      assert.ok(challenge.includes(`resource_metadata="${admin.resourceMetadataUrl}"`));
    } finally {
      await other.close();
      await admin.close();
    }
  });

  it('the SDK client lists and calls tools with a bearer token; dropped sessions answer 404', async () => {
    const tokens = await obtainTokens(as, { resource: mcp.url, subject: 'alice' });
    const transport = new StreamableHTTPClientTransport(new URL(mcp.url), {
      requestInit: { headers: { authorization: `Bearer ${tokens.response.access_token}` } },
    });
    const sdk = new Client({ name: 'harness-test', version: '1.0.0' });
    await sdk.connect(transport);
    try {
      const { tools } = await sdk.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), ['echo', 'whoami']);
      const echo = await sdk.callTool({ name: 'echo', arguments: { text: 'hello' } });
      assert.deepEqual(echo.content, [{ type: 'text', text: 'hello' }]);
      const whoami = await sdk.callTool({ name: 'whoami', arguments: {} });
      assert.deepEqual(whoami.content, [{ type: 'text', text: 'alice' }]);
      assert.equal(mcp.counters.count('tool', 'echo'), 1);
      assert.equal(mcp.sessionCount, 1);

      const sessionId = transport.sessionId;
      assert.ok(sessionId);
      await mcp.dropAllSessions();
      const stale = await fetch(mcp.url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${tokens.response.access_token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessionId,
          'mcp-protocol-version': '2025-06-18',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/list' }),
      });
      assert.equal(stale.status, 404);
      assert.ok(mcp.counters.count('session', 'not-found') >= 1);
    } finally {
      await sdk.close().catch(() => undefined);
    }
  });
});

describe('fault proxy in front of the AS', () => {
  let proxy: FaultProxy;
  let as: TestAuthorizationServer;
  const resource = 'http://127.0.0.1:9/mcp';
  before(async () => {
    proxy = await startFaultProxy();
    as = await startAuthorizationServer({ frontedBy: proxy, resources: [resource] });
  });
  after(async () => {
    await as.close();
    await proxy.close();
  });

  /** A fresh refresh token, with the counters zeroed. */
  async function freshRefreshToken(): Promise<string> {
    const tokens = await obtainTokens(as, { resource, subject: 'alice' });
    as.counters.reset();
    return tokens.response.refresh_token ?? '';
  }

  it('the issuer and every endpoint in the metadata are the proxy', async () => {
    assert.equal(as.issuer, proxy.origin);
    assert.equal(proxy.target, as.directUrl);
    const metadata = await discover(as.issuer);
    for (const key of [
      'authorization_endpoint',
      'token_endpoint',
      'revocation_endpoint',
      'introspection_endpoint',
      'device_authorization_endpoint',
      'registration_endpoint',
    ] as const) {
      assert.ok(String(metadata[key]).startsWith(`${proxy.origin}/`), `${key}: ${String(metadata[key])}`);
    }
    const seenBefore = proxy.seen('/token').length;
    await freshRefreshToken();
    assert.ok(proxy.seen('/token').length > seenBefore, 'the code redemption went through the proxy');
  });

  it('status: 503 without forwarding, limited by times', async () => {
    const rt = await freshRefreshToken();
    const outage = proxy.inject({
      method: 'POST',
      path: '/token',
      action: { type: 'status', status: 503 },
      times: 1,
    });
    const failed = await refresh(as, rt);
    assert.equal(failed.status, 503);
    assert.equal(outage.hits, 1);
    assert.equal(as.counters.count('refresh_token'), 0, 'the AS saw nothing');
    assert.equal((await refresh(as, rt)).status, 200, 'times: 1 was used up');
    assert.equal(as.counters.count('refresh_token', 'ok'), 1);
  });

  it('exact: a fault on /token leaves /token/revocation alone', async () => {
    const metadata = await discover(as.issuer);
    const rt = await freshRefreshToken();
    const outage = proxy.inject({ path: '/token', exact: true, action: { type: 'status', status: 503 } });
    assert.equal((await refresh(as, rt)).status, 503);
    const revoked = await oauth.revocationRequest(metadata, client, oauth.None(), rt, insecure);
    assert.equal(revoked.status, 200);
    await revoked.body?.cancel();
    assert.equal(as.counters.count('revocation', 'ok'), 1);
    proxy.clear(outage);
    assert.equal((await refresh(as, rt)).body['error'], 'invalid_grant', 'the revocation took effect');
  });

  it('status with a body and headers; rate-limit: 429 with Retry-After', async () => {
    const rt = await freshRefreshToken();
    proxy.inject({
      path: '/token',
      action: {
        type: 'status',
        status: 500,
        body: '{"error":"server_error"}',
        headers: { 'content-type': 'application/json' },
      },
      times: 1,
    });
    const five = await refresh(as, rt);
    assert.equal(five.status, 500);
    assert.deepEqual(five.body, { error: 'server_error' });

    const limited = proxy.inject({
      method: 'POST',
      path: '/token',
      action: { type: 'rate-limit', retryAfter: 7 },
    });
    const response = await refresh(as, rt);
    assert.equal(response.status, 429);
    assert.equal(response.headers.get('retry-after'), '7');
    assert.equal(as.counters.count('refresh_token'), 0);
    proxy.clear(limited);
    assert.equal((await refresh(as, rt)).status, 200, 'cleared');
  });

  it('timeout: the request hangs until the client gives up', async () => {
    const rt = await freshRefreshToken();
    const hang = proxy.inject({ path: '/token', action: { type: 'timeout' } });
    const started = Date.now();
    await assert.rejects(refresh(as, rt, { signal: AbortSignal.timeout(300) }), { name: 'TimeoutError' });
    assert.ok(Date.now() - started >= 290);
    await hang.arrived;
    assert.equal(as.counters.count('refresh_token'), 0);
    proxy.clear(hang);
    assert.equal((await refresh(as, rt)).status, 200, 'cleared');
  });

  it('drop: the connection dies without a response', async () => {
    const rt = await freshRefreshToken();
    proxy.inject({ path: '/token', action: { type: 'drop' }, times: 1 });
    await assert.rejects(refresh(as, rt), TypeError);
    assert.equal(as.counters.count('refresh_token'), 0);
  });

  it('lost-response: the AS rotated the token but the client got a network error', async () => {
    const rt = await freshRefreshToken();
    const lost = proxy.inject({
      method: 'POST',
      path: '/token',
      action: { type: 'lost-response' },
      times: 1,
    });
    await assert.rejects(refresh(as, rt), TypeError);
    await lost.processed;
    assert.equal(lost.processedCount, 1);
    assert.equal(as.counters.count('refresh_token', 'ok'), 1, 'the AS processed the refresh');
    // The trap this sets: a blind retry presents the consumed token and kills the grant.
    const retry = await refresh(as, rt);
    assert.equal(retry.body['error'], 'invalid_grant');
  });

  it('garbage: 200 with a truncated JSON body', async () => {
    const rt = await freshRefreshToken();
    proxy.inject({ path: '/token', action: { type: 'garbage' }, times: 1 });
    const metadata = await discover(as.issuer);
    const response = await oauth.refreshTokenGrantRequest(metadata, client, oauth.None(), rt, insecure);
    assert.equal(response.status, 200);
    await assert.rejects(oauth.processRefreshTokenResponse(metadata, client, response));
    assert.equal(as.counters.count('refresh_token'), 0);
  });

  it('hold: nothing reaches the AS until release; a client that left meanwhile is not forwarded', async () => {
    const rt = await freshRefreshToken();
    const held = proxy.inject({ method: 'POST', path: '/token', action: { type: 'hold' }, times: 1 });
    const pending = refresh(as, rt);
    await held.arrived;
    await sleep(200);
    assert.equal(as.counters.count('refresh_token'), 0, 'parked at the proxy');
    held.release();
    assert.equal((await pending).status, 200);
    assert.equal(as.counters.count('refresh_token', 'ok'), 1);

    const rt2 = await freshRefreshToken();
    const held2 = proxy.inject({ method: 'POST', path: '/token', action: { type: 'hold' } });
    const abort = new AbortController();
    const abandoned = refresh(as, rt2, { signal: abort.signal });
    await held2.arrived;
    abort.abort(); // the client process dies while its request is parked
    await assert.rejects(abandoned);
    await sleep(300); // let the proxy see the connection close
    held2.release();
    await sleep(200);
    assert.equal(as.counters.count('refresh_token'), 0, 'the dead client request never reached the AS');
    assert.equal((await refresh(as, rt2)).status, 200, 'release also ends holding');
  });

  it('delay: forwarded after the given time', async () => {
    const rt = await freshRefreshToken();
    proxy.inject({ path: '/token', action: { type: 'delay', ms: 400 }, times: 1 });
    const started = Date.now();
    assert.equal((await refresh(as, rt)).status, 200);
    assert.ok(Date.now() - started >= 390);
  });
});

describe('fault proxy as a transparent stream proxy', () => {
  let proxy: FaultProxy;
  let release: () => void = () => undefined;
  const target = createServer((req, res) => {
    if (req.url?.startsWith('/events')) {
      // One event now, the rest only when the test says so: a buffering proxy would
      // deliver nothing until the end.
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: one\n\n');
      release = () => res.end('data: two\n\n');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'application/json', 'x-target': 'yes' });
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          host: req.headers.host,
          custom: req.headers['x-custom'],
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
  });
  before(async () => {
    proxy = await startFaultProxy(await listenOnLoopback(target));
  });
  after(async () => {
    release();
    await proxy.close();
    await closeServer(target);
  });

  it('preserves method, path, query, headers (Host included) and body', async () => {
    const response = await fetch(`${proxy.origin}/a/b?x=1&y=2`, {
      method: 'PUT',
      headers: { 'x-custom': 'kept' },
      body: 'payload',
    });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get('x-target'), 'yes');
    assert.deepEqual(await response.json(), {
      method: 'PUT',
      url: '/a/b?x=1&y=2',
      host: new URL(proxy.origin).host,
      custom: 'kept',
      body: 'payload',
    });
    assert.equal(proxy.seen('/a').length, 1);
  });

  it('streams SSE without buffering', async () => {
    const response = await fetch(`${proxy.origin}/events`);
    assert.ok(response.body);
    const reader = response.body.getReader();
    const first = await Promise.race([reader.read(), sleep(2000).then(() => undefined)]);
    assert.ok(first?.value, 'the first event arrived while the stream is still open');
    assert.equal(new TextDecoder().decode(first.value), 'data: one\n\n');
    release();
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    assert.equal(rest, 'data: two\n\n');
  });

  it('corrupt-stream: undecodable bytes injected after the first event, then the stream goes on', async () => {
    const corrupt = proxy.inject({
      path: '/events',
      action: { type: 'corrupt-stream', afterEvents: 1 },
      times: 1,
    });
    const pending = fetch(`${proxy.origin}/events`);
    await corrupt.arrived;
    const response = await pending;
    const reader = response.body?.getReader();
    assert.ok(reader);
    let received = Buffer.alloc(0);
    while (!received.includes(Buffer.from(' not json at all\n\n'))) {
      const { done, value } = await reader.read();
      assert.ok(!done, 'garbage arrived before the end');
      received = Buffer.concat([received, value]);
    }
    release();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received = Buffer.concat([received, value]);
    }
    assert.ok(received.subarray(0, 11).equals(Buffer.from('data: one\n\n')), 'first event intact');
    assert.ok(received.includes(Buffer.from([0xff, 0xfe, 0xfd])), 'invalid UTF-8');
    assert.ok(received.subarray(-11).equals(Buffer.from('data: two\n\n')), 'then the stream went on');
    assert.throws(() => new TextDecoder('utf-8', { fatal: true }).decode(received));
  });
});

describe('fault proxy in front of the MCP server', () => {
  let as: TestAuthorizationServer;
  let proxy: FaultProxy;
  let mcp: TestMcpServer;
  before(async () => {
    as = await startAuthorizationServer();
    proxy = await startFaultProxy();
    mcp = await startMcpServer({ authorizationServer: as, frontedBy: proxy });
  });
  after(async () => {
    await mcp.close();
    await proxy.close();
    await as.close();
  });

  it('the resource is the proxy URL, and a corrupted SSE response reaches the client', async () => {
    assert.equal(mcp.url, `${proxy.origin}/mcp`);
    const tokens = await obtainTokens(as, { resource: mcp.url, subject: 'alice' });
    proxy.inject({
      method: 'POST',
      path: '/mcp',
      action: { type: 'corrupt-stream', afterEvents: 0 },
      times: 1,
    });
    const response = await initializeWithBearer(mcp.url, tokens.response.access_token);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/event-stream');
    const body = Buffer.from(await response.arrayBuffer());
    assert.ok(body.includes(Buffer.from([0xff, 0xfe, 0xfd])), 'garbage first');
    assert.ok(body.includes(Buffer.from('"result"')), 'then the real initialize result');
  });
});
