// The inputs the fuzz properties found, kept as plain tests so they fail on the old code
// whatever the random seed: each made a TypeError or RangeError escape where a typed error
// or a value belonged.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import type { AccessToken } from '../../src/lifecycle/token-cache.js';
import { silentLogger } from '../../src/log.js';
import { LegacySseWire } from '../../src/mcp/legacy-sse.js';
import { SseGarbageError } from '../../src/mcp/sse.js';
import { StreamBrokenError } from '../../src/mcp/wire-errors.js';
import { ensureRegistration } from '../../src/oauth/registration.js';
import { createMemoryStore } from '../../src/store/memory.js';

const SERVER = 'https://mcp.example.com/mcp';
const ISSUER = 'https://as.example.com';
const METADATA = {
  issuer: ISSUER,
  authorization_endpoint: `${ISSUER}/authorize`,
  token_endpoint: `${ISSUER}/token`,
  registration_endpoint: `${ISSUER}/register`,
};

function serving(status: number, body: string): typeof fetch {
  return (async (input: string | URL | Request) => {
    if (String(input instanceof Request ? input.url : input).includes('/.well-known/'))
      return Response.json(METADATA);
    return new Response(body, { status, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
}

async function refreshWith(status: number, body: string) {
  const store = createMemoryStore();
  const manager = new CredentialManager({
    store,
    logger: silentLogger,
    watch: false,
    proactiveRefresh: false,
    fetch: serving(status, body),
  });
  try {
    const first = await manager.saveAcquired(SERVER, {
      issuer: ISSUER,
      clientId: 'client-1',
      requestedAt: Date.now(),
      response: { access_token: 'at-old', token_type: 'Bearer', expires_in: 3600, refresh_token: 'rt-old' },
    });
    let token: AccessToken | undefined;
    let error: unknown;
    try {
      token = await manager.getToken(SERVER, { rejectedToken: first.token });
    } catch (caught) {
      error = caught;
    }
    const [stored] = await store.listCredentials({ server: SERVER });
    return { token, error, stored };
  } finally {
    manager.close();
    await store.close();
  }
}

const jwt = (claims: Record<string, unknown>): string =>
  `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;

describe('fuzz findings', () => {
  it('a token error whose error_description is an object is a LOGIN_REQUIRED, not a TypeError', async () => {
    const { error } = await refreshWith(
      400,
      '{"error":"invalid_grant","error_description":{"toString":null}}',
    );
    assert.ok(isLatchkeyError(error), String(error));
    assert.equal(error.code, 'LOGIN_REQUIRED');
    assert.equal(error.server, SERVER);
  });

  it('a registration error whose error_description is a number is CLIENT_REJECTED, not a TypeError', async () => {
    const store = createMemoryStore();
    const error = await ensureRegistration({
      store,
      server: SERVER,
      as: METADATA,
      config: {},
      redirectUris: ['http://127.0.0.1:4000/callback'],
      grantTypes: ['authorization_code'],
      fetch: serving(400, '{"error":"invalid_client_metadata","error_description":0}'),
    }).then(
      () => assert.fail('the registration was refused'),
      (e: unknown) => e,
    );
    await store.close();
    assert.ok(isLatchkeyError(error), String(error));
    assert.equal(error.code, 'CLIENT_REJECTED');
    assert.equal(error.server, SERVER);
  });

  it('expires_in and refresh_token_expires_in of 1e308 give expiries a Date can hold', async () => {
    const { token, stored } = await refreshWith(
      200,
      '{"access_token":"at-new","token_type":"Bearer","expires_in":1e308,"refresh_token":"rt-new","refresh_token_expires_in":1e308}',
    );
    assert.ok(token !== undefined && stored !== undefined);
    for (const at of [token.expiresAt, stored.expiresAt, stored.refreshTokenExpiresAt]) {
      assert.ok(at !== undefined);
      assert.doesNotThrow(() => new Date(at).toISOString(), `expiry ${at}`);
      assert.ok(at > Date.now() + 50 * 365 * 24 * 3600 * 1000, 'still far in the future');
    }
  });

  it('a JWT exp past the last Date is no expiry hint', async () => {
    const { token, stored } = await refreshWith(
      200,
      JSON.stringify({
        access_token: jwt({ sub: 'u', exp: 1e300 }),
        token_type: 'Bearer',
        refresh_token: 'rt-new',
      }),
    );
    assert.ok(token !== undefined && stored !== undefined);
    assert.equal(stored.expiresAt, undefined);
    assert.equal(stored.expirySource, 'none');
  });

  it('a legacy SSE endpoint that is not a URL is garbage, not a TypeError', async () => {
    const fetch = (async () =>
      new Response('event: endpoint\ndata: https://:0\n\n', {
        status: 200,
        headers: { 'content-type': 'text/event-stream' },
      })) as typeof globalThis.fetch;
    const wire = new LegacySseWire({ url: new URL(SERVER), fetch });
    const error = await wire
      .open(() => undefined, 2000)
      .then(
        () => assert.fail('no usable endpoint'),
        (e: unknown) => e,
      );
    wire.close();
    assert.ok(error instanceof StreamBrokenError, String(error));
    assert.equal(error.garbage, true);
    assert.ok(error.cause instanceof SseGarbageError, String(error.cause));
  });
});
