import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, webcrypto } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import * as oauth from 'oauth4webapi';

import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { buildContext } from '../../src/oauth/client-context.js';
import { clientCredentialsHook } from '../../src/login/client-credentials.js';
import { clientContextForConfig, clientCredentialsGrant } from '../../src/oauth/client-credentials.js';
import { ensureRegistration } from '../../src/oauth/registration.js';
import type { ClientConfig } from '../../src/oauth/types.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  discover,
  type FaultProxy,
  startAuthorizationServer,
  startFaultProxy,
  type TestAuthorizationServer,
} from '../harness/index.js';

const SERVER = 'http://127.0.0.1:9/mcp';
const CLIENT_CREDENTIALS = {
  redirect_uris: [],
  response_types: [],
  grant_types: ['client_credentials'],
};

describe('client credentials grant (confidential clients) against a real AS', () => {
  let proxy: FaultProxy;
  let as: TestAuthorizationServer;
  let metadata: oauth.AuthorizationServer;
  const postClient = { clientId: 'svc-post', clientSecret: randomBytes(16).toString('hex') };
  // private_key_jwt: one EC key given as PKCS#8 PEM, one RSA key given as a CryptoKey.
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let rsa: oauth.CryptoKeyPair;

  before(async () => {
    rsa = await oauth.generateKeyPair('RS256', { extractable: true });
    const rsaJwk = await webcrypto.subtle.exportKey('jwk', rsa.publicKey as webcrypto.CryptoKey);
    proxy = await startFaultProxy();
    as = await startAuthorizationServer({
      frontedBy: proxy,
      accessTokenTtl: 300,
      resources: [SERVER],
      clients: [
        {
          client_id: postClient.clientId,
          client_secret: postClient.clientSecret,
          token_endpoint_auth_method: 'client_secret_post',
          ...CLIENT_CREDENTIALS,
        },
        {
          client_id: 'svc-jwt-ec',
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: [{ ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', use: 'sig' }] },
          ...CLIENT_CREDENTIALS,
        },
        {
          client_id: 'svc-jwt-rsa',
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: [{ ...rsaJwk, kid: 'rsa-1', use: 'sig', alg: 'RS256' }] },
          ...CLIENT_CREDENTIALS,
        },
      ],
    });
    metadata = await discover(as.issuer);
  });
  after(async () => {
    await as.close();
    await proxy.close();
  });

  /** The pre-registered client behind `config`, as a context ready for the token endpoint. */
  async function contextFor(config: ClientConfig) {
    const registration = await ensureRegistration({
      store: createMemoryStore(),
      server: SERVER,
      as: metadata,
      config,
      redirectUris: [],
      grantTypes: ['client_credentials'],
    });
    return clientContextForConfig(metadata, registration, config);
  }

  /** The Authorization header of the last token request the AS received. */
  function lastTokenRequestAuthorization(): string | undefined {
    const seen = proxy.seen('/token').filter((r) => r.path === '/token');
    return seen.at(-1)?.headers.authorization;
  }

  it('client_secret_basic: audience-bound token for the resource', async () => {
    const ctx = await contextFor({
      clientId: as.serviceClient.clientId,
      clientSecret: as.serviceClient.clientSecret,
    });
    const result = await clientCredentialsGrant(ctx, {
      resource: SERVER,
      scope: as.scope,
      timeoutMs: 10_000,
    });
    assert.match(lastTokenRequestAuthorization() ?? '', /^Basic /);
    const info = await as.introspect(result.response.access_token);
    assert.equal(info.active, true);
    assert.equal(info.aud, SERVER);
    assert.equal(info.client_id, as.serviceClient.clientId);
    assert.ok(result.requestedAt <= Date.now());
  });

  it('client_secret_post: the secret goes in the body, not a header', async () => {
    const ctx = await contextFor({ ...postClient, tokenEndpointAuthMethod: 'client_secret_post' });
    const result = await clientCredentialsGrant(ctx, { resource: SERVER, timeoutMs: 10_000 });
    assert.equal(lastTokenRequestAuthorization(), undefined);
    assert.equal((await as.introspect(result.response.access_token)).client_id, postClient.clientId);
  });

  it('private_key_jwt with a PKCS#8 PEM (EC P-256, ES256 inferred)', async () => {
    const pem = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const ctx = await contextFor({ clientId: 'svc-jwt-ec', privateKey: { key: pem, kid: 'ec-1' } });
    assert.equal(ctx.client.token_endpoint_auth_method, 'private_key_jwt');
    const result = await clientCredentialsGrant(ctx, { resource: SERVER, timeoutMs: 10_000 });
    assert.equal(lastTokenRequestAuthorization(), undefined);
    assert.equal((await as.introspect(result.response.access_token)).client_id, 'svc-jwt-ec');
  });

  it('private_key_jwt with a CryptoKey (RS256)', async () => {
    const ctx = await contextFor({
      clientId: 'svc-jwt-rsa',
      tokenEndpointAuthMethod: 'private_key_jwt',
      privateKey: { key: rsa.privateKey as webcrypto.CryptoKey, kid: 'rsa-1' },
    });
    const result = await clientCredentialsGrant(ctx, { resource: SERVER, timeoutMs: 10_000 });
    assert.equal((await as.introspect(result.response.access_token)).client_id, 'svc-jwt-rsa');
  });

  it('private_key_jwt signed with the wrong key is refused as CLIENT_REJECTED', async () => {
    const wrong = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = wrong.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const ctx = await contextFor({ clientId: 'svc-jwt-ec', privateKey: { key: pem, kid: 'ec-1' } });
    await assert.rejects(
      clientCredentialsGrant(ctx, { resource: SERVER, timeoutMs: 10_000 }),
      (error: unknown) => isLatchkeyError(error) && error.code === 'CLIENT_REJECTED',
    );
  });

  it('a wrong secret is CLIENT_REJECTED, names the server, and never contains the secret', async () => {
    const badSecret = 'definitely-not-the-secret-' + randomBytes(8).toString('hex');
    const ctx = buildContext(
      metadata,
      {
        issuer: metadata.issuer,
        clientId: as.serviceClient.clientId,
        clientSecret: badSecret,
        tokenEndpointAuthMethod: 'client_secret_basic',
        method: 'pre-registered',
        registeredAt: 0,
      },
      {},
    );
    await assert.rejects(
      clientCredentialsGrant(ctx, { resource: SERVER, timeoutMs: 10_000 }),
      (error: unknown) => {
        assert.ok(isLatchkeyError(error));
        assert.equal(error.code, 'CLIENT_REJECTED');
        assert.equal(error.retryable, false);
        assert.equal(error.server, SERVER);
        assert.match(error.message, /invalid_client/);
        assert.ok(!JSON.stringify(error).includes(badSecret));
        assert.ok(!error.message.includes(badSecret));
        return true;
      },
    );
  });

  it('a 429 from the token endpoint is a retryable RATE_LIMITED honouring Retry-After', async () => {
    const ctx = await contextFor({
      clientId: as.serviceClient.clientId,
      clientSecret: as.serviceClient.clientSecret,
    });
    const fault = proxy.inject({
      path: '/token',
      exact: true,
      action: { type: 'rate-limit', retryAfter: 7 },
      times: 1,
    });
    await assert.rejects(
      clientCredentialsGrant(ctx, { resource: SERVER, timeoutMs: 10_000 }),
      (error: unknown) => {
        assert.ok(isLatchkeyError(error));
        assert.equal(error.code, 'RATE_LIMITED');
        assert.equal(error.retryable, true);
        assert.ok(error.retryAt !== undefined && error.retryAt > Date.now() + 5_000, 'Retry-After honoured');
        return true;
      },
    );
    assert.equal(fault.hits, 1);
  });

  it('clientCredentialsHook: the manager acquires, stores (owned) and reuses the token', async () => {
    const store = createMemoryStore();
    const manager = new CredentialManager({
      store,
      logger: silentLogger,
      watch: false,
      proactiveRefresh: false,
      acquire: clientCredentialsHook({
        store,
        authorizationServer: async () => metadata,
        config: { clientId: as.serviceClient.clientId, clientSecret: as.serviceClient.clientSecret },
        scope: as.scope,
      }),
    });
    try {
      as.counters.reset();
      const token = await manager.getToken(SERVER);
      const again = await manager.getToken(SERVER);
      assert.equal(again.token, token.token);
      assert.equal(as.counters.count('client_credentials', 'ok'), 1);
      const info = await as.introspect(token.token);
      assert.equal(info.aud, SERVER);
      assert.equal(info.client_id, as.serviceClient.clientId);
      const [cred] = await store.listCredentials({ server: SERVER });
      assert.equal(cred?.owned, true);
      assert.equal(cred?.key.issuer, metadata.issuer);
      assert.equal(cred?.clientId, as.serviceClient.clientId);
      assert.equal((await store.getRegistration(metadata.issuer))?.method, 'pre-registered');
    } finally {
      manager.close();
    }
  });

  it('clientCredentialsHook refuses a public client and a client bound to another issuer', async () => {
    assert.throws(
      () =>
        clientCredentialsHook({
          store: createMemoryStore(),
          authorizationServer: metadata,
          config: { clientId: 'public-only' },
        }),
      (error: unknown) => isLatchkeyError(error) && error.code === 'INVALID_INPUT',
    );
    const store = createMemoryStore();
    const manager = new CredentialManager({
      store,
      logger: silentLogger,
      watch: false,
      proactiveRefresh: false,
      acquire: clientCredentialsHook({
        store,
        authorizationServer: metadata,
        config: { ...as.serviceClient, issuer: 'https://elsewhere.example' },
      }),
    });
    try {
      as.counters.reset();
      await assert.rejects(manager.getToken(SERVER), (error: unknown) => {
        assert.ok(isLatchkeyError(error));
        assert.equal(error.code, 'INVALID_INPUT');
        assert.match(error.message, /elsewhere\.example/);
        return true;
      });
      assert.equal(as.counters.count('client_credentials'), 0, 'AUTH-29: nothing was sent');
    } finally {
      manager.close();
    }
  });
});
