import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type * as oauth from 'oauth4webapi';

import { renderNextStep } from '../../src/cli/next-step.js';
import { isLatchkeyError } from '../../src/errors.js';
import {
  chooseRegistrationMethod,
  ensureRegistration,
  type EnsureRegistrationOptions,
  evictRegistration,
  isClientIdMetadataDocumentUrl,
  redirectCovers,
} from '../../src/oauth/registration.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  discover,
  type FaultProxy,
  obtainTokens,
  startAuthorizationServer,
  startFaultProxy,
  type TestAuthorizationServer,
} from '../harness/index.js';

const SERVER = 'http://127.0.0.1:9/mcp';
const REDIRECT = 'http://127.0.0.1:49200/callback';
const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';

function options(
  store: CredentialStore,
  as: oauth.AuthorizationServer,
  extra: Partial<EnsureRegistrationOptions> = {},
): EnsureRegistrationOptions {
  return {
    store,
    server: SERVER,
    as,
    config: {},
    redirectUris: [REDIRECT],
    grantTypes: ['authorization_code'],
    ...extra,
  };
}

describe('registration: RFC 7591 dynamic registration against a real AS', () => {
  let as: TestAuthorizationServer;
  let metadata: oauth.AuthorizationServer;

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300, resources: [SERVER] });
    metadata = await discover(as.issuer);
  });
  after(() => as.close());

  it('registers a native public client, stores it per issuer, and the client works', async () => {
    const store = createMemoryStore();
    as.counters.reset();
    const reg = await ensureRegistration(options(store, metadata));
    assert.equal(reg.method, 'dynamic');
    assert.equal(reg.issuer, as.issuer);
    assert.equal(reg.tokenEndpointAuthMethod, 'none');
    assert.equal(reg.clientSecret, undefined);
    assert.equal(reg.metadata?.['application_type'], 'native', 'AUTH-25');
    assert.deepEqual(reg.metadata?.['grant_types'], ['authorization_code', 'refresh_token'], 'AUTH-60');
    assert.equal(as.counters.count('registration', 'ok'), 1);
    assert.deepEqual(await store.getRegistration(as.issuer), reg, 'AUTH-27: stored under the issuer');

    const tokens = await obtainTokens(as, {
      resource: SERVER,
      subject: 'reggie',
      clientId: reg.clientId,
      redirectUri: REDIRECT,
    });
    assert.ok(tokens.response.refresh_token, 'refresh_token grant was registered');
    assert.equal((await as.introspect(tokens.response.access_token)).client_id, reg.clientId);
  });

  it('reuses the stored registration with zero further registration requests', async () => {
    const store = createMemoryStore();
    const first = await ensureRegistration(options(store, metadata));
    as.counters.reset();
    const again = await ensureRegistration(options(store, metadata));
    // Another loopback port (the receiver's fallback): RFC 8252 §7.3, still covered.
    const otherPort = await ensureRegistration(
      options(store, metadata, { redirectUris: ['http://127.0.0.1:50111/callback'] }),
    );
    assert.equal(again.clientId, first.clientId);
    assert.equal(otherPort.clientId, first.clientId);
    assert.equal(as.counters.count('registration'), 0);
    const tokens = await obtainTokens(as, {
      resource: SERVER,
      subject: 'reggie',
      clientId: first.clientId,
      redirectUri: 'http://127.0.0.1:50111/callback',
    });
    assert.ok((await as.introspect(tokens.response.access_token)).active, 'the AS accepts the other port');
  });

  it('registers again when the stored client does not cover the grant types needed', async () => {
    const store = createMemoryStore();
    const first = await ensureRegistration(options(store, metadata));
    as.counters.reset();
    const device = await ensureRegistration(
      options(store, metadata, { redirectUris: [], grantTypes: [DEVICE_CODE] }),
    );
    assert.notEqual(device.clientId, first.clientId);
    assert.equal(as.counters.count('registration', 'ok'), 1);
    assert.deepEqual(device.metadata?.['grant_types'], [DEVICE_CODE, 'refresh_token']);
    assert.equal((await store.getRegistration(as.issuer))?.clientId, device.clientId);
  });

  it('renews a registration whose client secret expired', async () => {
    const store = createMemoryStore();
    await store.putRegistration({
      issuer: as.issuer,
      clientId: 'expired-client',
      clientSecret: 'an-expired-secret-value',
      tokenEndpointAuthMethod: 'client_secret_basic',
      method: 'dynamic',
      registeredAt: Date.now() - 3_600_000,
      clientSecretExpiresAt: Date.now() - 1000,
      metadata: {
        application_type: 'native',
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
      },
    });
    as.counters.reset();
    const renewed = await ensureRegistration(options(store, metadata));
    assert.notEqual(renewed.clientId, 'expired-client');
    assert.equal(as.counters.count('registration', 'ok'), 1);
    assert.equal((await store.getRegistration(as.issuer))?.clientId, renewed.clientId);
  });

  it('evictRegistration forgets only the rejected client; the next call registers again', async () => {
    const store = createMemoryStore();
    const first = await ensureRegistration(options(store, metadata));
    assert.equal(await evictRegistration(store, as.issuer, 'some-other-client'), false);
    assert.equal((await store.getRegistration(as.issuer))?.clientId, first.clientId, 'kept');
    assert.equal(await evictRegistration(store, as.issuer, first.clientId), true);
    assert.equal(await store.getRegistration(as.issuer), undefined);
    as.counters.reset();
    const second = await ensureRegistration(options(store, metadata));
    assert.notEqual(second.clientId, first.clientId);
    assert.equal(as.counters.count('registration', 'ok'), 1);
  });

  it('AUTH-26: a native registration refused over its redirect URIs is retried once as web', async () => {
    const store = createMemoryStore();
    as.counters.reset();
    // oidc-provider refuses http redirect URIs on non-loopback hosts for native clients.
    const reg = await ensureRegistration(
      options(store, metadata, { redirectUris: ['http://client.example/callback'] }),
    );
    assert.equal(reg.metadata?.['application_type'], 'web');
    assert.equal(as.counters.count('registration', 'invalid_redirect_uri'), 1, 'the native attempt');
    assert.equal(as.counters.count('registration', 'ok'), 1, 'the web attempt');
  });

  it('AUTH-26: any other rejection is a typed, non-retryable error naming the AS and the server', async () => {
    const store = createMemoryStore();
    as.counters.reset();
    await assert.rejects(
      ensureRegistration(options(store, metadata, { grantTypes: ['urn:example:made-up-grant'] })),
      (error: unknown) => {
        assert.ok(isLatchkeyError(error));
        assert.equal(error.code, 'CLIENT_REJECTED');
        assert.equal(error.retryable, false);
        assert.equal(error.server, SERVER);
        assert.match(error.message, /invalid_client_metadata/);
        assert.ok(error.message.includes(as.issuer), error.message);
        assert.equal(error.next?.needsClientId, true);
        assert.match(renderNextStep(error.next), /--client-id/);
        return true;
      },
    );
    assert.equal(as.counters.count('registration'), 1, 'not retried: not about redirect URIs');
    assert.equal(await store.getRegistration(as.issuer), undefined);
  });

  it('an explicit web application type is sent as is', async () => {
    const store = createMemoryStore();
    const reg = await ensureRegistration(
      options(store, metadata, {
        applicationType: 'web',
        redirectUris: ['https://gateway.example/callback'],
      }),
    );
    assert.equal(reg.metadata?.['application_type'], 'web');
  });
});

describe('registration: pre-registered clients and issuer binding', () => {
  let as: TestAuthorizationServer;
  let metadata: oauth.AuthorizationServer;

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300, resources: [SERVER] });
    metadata = await discover(as.issuer);
  });
  after(() => as.close());

  it('a configured client wins over DCR and is stored per issuer with its secret', async () => {
    const store = createMemoryStore();
    as.counters.reset();
    const config = { clientId: as.serviceClient.clientId, clientSecret: as.serviceClient.clientSecret };
    const reg = await ensureRegistration(options(store, metadata, { config }));
    assert.equal(reg.method, 'pre-registered');
    assert.equal(reg.clientId, as.serviceClient.clientId);
    assert.equal(reg.tokenEndpointAuthMethod, 'client_secret_basic');
    assert.equal(as.counters.count('registration'), 0);
    assert.equal((await store.getRegistration(as.issuer))?.clientSecret, as.serviceClient.clientSecret);

    // Later logins without --client-id use the stored client (no DCR).
    const later = await ensureRegistration(options(store, metadata));
    assert.equal(later.clientId, as.serviceClient.clientId);
    assert.equal(as.counters.count('registration'), 0);
  });

  it('AUTH-29: a client configured for another issuer is refused before any request', async () => {
    const store = createMemoryStore();
    as.counters.reset();
    await assert.rejects(
      ensureRegistration(
        options(store, metadata, { config: { clientId: 'corp-client', issuer: 'https://old-idp.example' } }),
      ),
      (error: unknown) => {
        assert.ok(isLatchkeyError(error));
        assert.equal(error.code, 'INVALID_INPUT');
        assert.equal(error.server, SERVER);
        assert.ok(error.message.includes('https://old-idp.example'), error.message);
        assert.ok(error.message.includes(as.issuer), error.message);
        return true;
      },
    );
    assert.equal(await store.getRegistration(as.issuer), undefined);
    assert.equal(as.counters.count('registration'), 0);
  });

  it('a secret-based auth method without a secret is refused', async () => {
    await assert.rejects(
      ensureRegistration(
        options(createMemoryStore(), metadata, {
          config: { clientId: 'x', tokenEndpointAuthMethod: 'client_secret_post' },
        }),
      ),
      /client_secret_post needs a client secret/,
    );
  });

  it('AS change: a registration is made at the new AS, the old one is left alone (AUTH-28)', async () => {
    const store = createMemoryStore();
    const other = await startAuthorizationServer({ accessTokenTtl: 300, resources: [SERVER] });
    try {
      const otherMetadata = await discover(other.issuer);
      const first = await ensureRegistration(options(store, metadata));
      const second = await ensureRegistration(options(store, otherMetadata));
      assert.equal(other.counters.count('registration', 'ok'), 1);
      assert.equal(second.issuer, other.issuer);
      assert.equal((await store.getRegistration(as.issuer))?.clientId, first.clientId);
      assert.equal((await store.getRegistration(other.issuer))?.clientId, second.clientId);
      // Back at the first AS: its stored client is reused.
      as.counters.reset();
      assert.equal((await ensureRegistration(options(store, metadata))).clientId, first.clientId);
      assert.equal(as.counters.count('registration'), 0);
    } finally {
      await other.close();
    }
  });

  it('an AS with neither CIMD nor a registration endpoint asks for a client id', async () => {
    const closed = await startAuthorizationServer({ registration: false });
    try {
      const closedMetadata = await discover(closed.issuer);
      assert.equal(closedMetadata.registration_endpoint, undefined);
      await assert.rejects(
        ensureRegistration(options(createMemoryStore(), closedMetadata)),
        (error: unknown) => {
          assert.ok(isLatchkeyError(error));
          assert.equal(error.code, 'INVALID_INPUT');
          assert.equal(error.retryable, false);
          assert.ok(error.next !== undefined, 'a next action');
          const words = renderNextStep(error.next);
          assert.ok(words.includes(`latchkey login ${SERVER} --client-id`), words);
          return true;
        },
      );
    } finally {
      await closed.close();
    }
  });
});

describe('registration: transient failures', () => {
  let proxy: FaultProxy;
  let as: TestAuthorizationServer;

  before(async () => {
    proxy = await startFaultProxy();
    as = await startAuthorizationServer({ frontedBy: proxy });
  });
  after(async () => {
    await as.close();
    await proxy.close();
  });

  it('a 503 from the registration endpoint is a retryable AS_UNAVAILABLE and stores nothing', async () => {
    const metadata = await discover(as.issuer);
    const fault = proxy.inject({ path: '/reg', action: { type: 'status', status: 503 }, times: 1 });
    const store = createMemoryStore();
    await assert.rejects(ensureRegistration(options(store, metadata)), (error: unknown) => {
      assert.ok(isLatchkeyError(error));
      assert.equal(error.code, 'AS_UNAVAILABLE');
      assert.equal(error.retryable, true);
      assert.match(error.message, /503/);
      return true;
    });
    assert.equal(fault.hits, 1);
    assert.equal(await store.getRegistration(as.issuer), undefined);
    assert.equal(
      (await ensureRegistration(options(store, metadata))).method,
      'dynamic',
      'works once it is back',
    );
  });
});

/**
 * CIMD: the harness AS (oidc-provider) is started without its client ID metadata document
 * feature, and a CIMD needs an https document the AS can fetch, so the CIMD path is tested
 * here through the decision function and ensureRegistration with CIMD-capable metadata (the
 * CIMD path itself makes no request: the client id is the document URL).
 */
describe('registration: client ID metadata documents (decision)', () => {
  const base: oauth.AuthorizationServer = {
    issuer: 'https://as.example',
    registration_endpoint: 'https://as.example/reg',
  };
  const cimd = { ...base, client_id_metadata_document_supported: true };
  const url = 'https://latchkey.example/client.json';

  it('AUTH-15 priority: pre-registered, then CIMD, then DCR, then nothing', () => {
    assert.equal(chooseRegistrationMethod(cimd, { clientId: 'c', clientMetadataUrl: url }), 'pre-registered');
    assert.equal(chooseRegistrationMethod(cimd, { clientMetadataUrl: url }), 'client-id-metadata-document');
    assert.equal(
      chooseRegistrationMethod(base, { clientMetadataUrl: url }),
      'dynamic',
      'AUTH-22: not advertised',
    );
    assert.equal(
      chooseRegistrationMethod(
        { ...base, client_id_metadata_document_supported: 'true' },
        { clientMetadataUrl: url },
      ),
      'dynamic',
      'only a JSON true counts',
    );
    assert.equal(chooseRegistrationMethod(cimd, {}), 'dynamic', 'no document configured');
    assert.equal(chooseRegistrationMethod({ issuer: 'https://as.example' }, {}), undefined);
    assert.equal(
      chooseRegistrationMethod(
        { issuer: 'https://as.example', client_id_metadata_document_supported: true },
        {},
      ),
      undefined,
    );
  });

  it('AUTH-18: the document URL is https with a path', () => {
    assert.equal(isClientIdMetadataDocumentUrl(url), true);
    assert.equal(isClientIdMetadataDocumentUrl('https://latchkey.example/'), false);
    assert.equal(isClientIdMetadataDocumentUrl('https://latchkey.example'), false);
    assert.equal(isClientIdMetadataDocumentUrl('http://latchkey.example/client.json'), false);
    assert.equal(isClientIdMetadataDocumentUrl('https://latchkey.example/client.json#x'), false);
    assert.equal(isClientIdMetadataDocumentUrl('not a url'), false);
  });

  it('the CIMD client id is the document URL, auth method none, stored per issuer', async () => {
    const store = createMemoryStore();
    const reg = await ensureRegistration(options(store, cimd, { config: { clientMetadataUrl: url } }));
    assert.equal(reg.method, 'client-id-metadata-document');
    assert.equal(reg.clientId, url, 'AUTH-20');
    assert.equal(reg.tokenEndpointAuthMethod, 'none');
    assert.deepEqual(await store.getRegistration(cimd.issuer), reg);
  });

  it('a configured document URL that is not https-with-path is an input error', async () => {
    await assert.rejects(
      ensureRegistration(
        options(createMemoryStore(), cimd, {
          config: { clientMetadataUrl: 'http://latchkey.example/c.json' },
        }),
      ),
      (error: unknown) => isLatchkeyError(error) && error.code === 'INVALID_INPUT',
    );
  });

  it('loopback redirect URIs of native clients match on any port; nothing else is loosened', () => {
    const registered = 'http://127.0.0.1:49200/callback';
    assert.equal(redirectCovers(registered, 'http://127.0.0.1:50000/callback', true), true);
    assert.equal(redirectCovers(registered, 'http://127.0.0.1:50000/callback', false), false);
    assert.equal(redirectCovers(registered, 'http://127.0.0.1:50000/other', true), false);
    assert.equal(redirectCovers(registered, 'http://localhost:49200/callback', true), false);
    assert.equal(
      redirectCovers('https://gw.example:8443/cb', 'https://gw.example:9443/cb', true),
      false,
      'https is exact',
    );
  });
});
