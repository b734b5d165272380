// Fuzz: token endpoint answers (success and error bodies, RFC 6749 §5.1/§5.2) on the refresh
// path, and dynamic client registration answers (RFC 7591 §3.2). Through the real
// CredentialManager and oauth4webapi, with an in-process fetch serving the hostile answer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { ensureRegistration } from '../../src/oauth/registration.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  failsOnlyTyped,
  fuzzParameters,
  fuzzRuns,
  fuzzTimeoutMs,
  hostileBody,
  hostileHeaders,
  hostileStatus,
  mutatedObject,
  response,
  toJsonText,
} from './hostile.js';

const SERVER = 'https://mcp.example.com/mcp';
const ISSUER = 'https://as.example.com';
const METADATA = {
  issuer: ISSUER,
  authorization_endpoint: `${ISSUER}/authorize`,
  token_endpoint: `${ISSUER}/token`,
  registration_endpoint: `${ISSUER}/register`,
  code_challenge_methods_supported: ['S256'],
};
const JWT = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyIiwiZXhwIjo0MTAyNDQ0ODAwLCJlbWFpbCI6InVAZXhhbXBsZS5jb20ifQ.';
const TOKEN_OK = {
  access_token: 'at-new',
  token_type: 'Bearer',
  expires_in: 3600,
  refresh_token: 'rt-new',
  scope: 'read write',
  refresh_token_expires_in: 86400,
};
const TOKEN_ERROR = { error: 'invalid_grant', error_description: 'the refresh token was revoked' };
const REGISTERED = {
  client_id: 'client-1',
  client_secret: 'secret-1',
  client_secret_expires_at: 0,
  client_id_issued_at: 1700000000,
  redirect_uris: ['http://127.0.0.1:4000/callback'],
  grant_types: ['authorization_code', 'refresh_token'],
  token_endpoint_auth_method: 'client_secret_basic',
  application_type: 'native',
  client_name: 'latchkey',
  registration_access_token: 'rat',
};

/** An unsigned JWT whose claims are hostile: `exp` of 1e308, accounts with escapes, `__proto__`. */
const hostileJwt = mutatedObject({ sub: 'user', exp: 4102444800, email: 'u@example.com', name: 'U' }).map(
  (claims) => `eyJhbGciOiJub25lIn0.${Buffer.from(toJsonText(claims)).toString('base64url')}.`,
);
const { expires_in: _omitted, ...TOKEN_WITHOUT_EXPIRY } = TOKEN_OK;

const tokenAnswer = fc.record({
  status: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(200, 400) },
    { weight: 1, arbitrary: hostileStatus },
  ),
  body: fc.oneof(
    hostileBody(TOKEN_OK),
    hostileBody({ ...TOKEN_OK, access_token: JWT, id_token: JWT }),
    fc
      .tuple(hostileJwt, hostileJwt)
      .chain(([access, id]) => hostileBody({ ...TOKEN_WITHOUT_EXPIRY, access_token: access, id_token: id })),
    hostileBody(TOKEN_ERROR),
  ),
  headers: hostileHeaders,
});

function fetchServing(answer: {
  status: number;
  body: string;
  headers: Record<string, string>;
}): typeof fetch {
  return (async (input: string | URL | Request) => {
    const url = String(input instanceof Request ? input.url : input);
    if (url.includes('/.well-known/')) return Response.json(METADATA);
    return response(answer.status, answer.body, answer.headers);
  }) as typeof fetch;
}

describe('fuzz: token and error responses', () => {
  it(
    'a refresh fails only with a LatchkeyError naming the server',
    { timeout: fuzzTimeoutMs(10) },
    async () => {
      let refreshed = 0;
      await fc.assert(
        fc.asyncProperty(tokenAnswer, async (answer) => {
          const store = createMemoryStore();
          const manager = new CredentialManager({
            store,
            logger: silentLogger,
            watch: false,
            proactiveRefresh: false,
            fetch: fetchServing(answer),
          });
          try {
            const first = await manager.saveAcquired(SERVER, {
              issuer: ISSUER,
              clientId: 'client-1',
              requestedAt: Date.now(),
              response: {
                access_token: 'at-old',
                token_type: 'Bearer',
                expires_in: 3600,
                refresh_token: 'rt-old',
              },
            });
            await failsOnlyTyped(async () => {
              const token = await manager.getToken(SERVER, { rejectedToken: first.token });
              // An accepted answer gives a usable token: a non-empty string with a sane expiry.
              assert.ok(typeof token.token === 'string' && token.token.length > 0);
              // Every stored instant is a representable date (a 1e308 s lifetime once made
              // `latchkey login` throw a RangeError printing it).
              const [stored] = await store.listCredentials({ server: SERVER });
              for (const at of [token.expiresAt, stored?.expiresAt, stored?.refreshTokenExpiresAt]) {
                if (at !== undefined) assert.doesNotThrow(() => new Date(at).toISOString(), `expiry ${at}`);
              }
              refreshed++;
            }, SERVER);
          } finally {
            manager.close();
            await store.close();
          }
        }),
        fuzzParameters(),
      );
      assert.ok(refreshed > 0 && refreshed < fuzzRuns(), `refreshed ${refreshed} of ${fuzzRuns()}`);
    },
  );
});

describe('fuzz: registration responses', () => {
  it(
    'dynamic registration fails only with a LatchkeyError naming the server',
    { timeout: fuzzTimeoutMs(5) },
    async () => {
      let registered = 0;
      const answer = fc.record({
        status: fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom(201, 400) },
          { weight: 1, arbitrary: hostileStatus },
        ),
        body: fc.oneof(
          hostileBody(REGISTERED),
          hostileBody({ error: 'invalid_redirect_uri', error_description: 'no' }),
        ),
        headers: hostileHeaders,
      });
      await fc.assert(
        fc.asyncProperty(answer, async (answer) => {
          const store = createMemoryStore();
          try {
            await failsOnlyTyped(async () => {
              const registration = await ensureRegistration({
                store,
                server: SERVER,
                as: METADATA,
                config: {},
                redirectUris: ['http://127.0.0.1:4000/callback'],
                grantTypes: ['authorization_code'],
                fetch: fetchServing(answer),
                timeoutMs: 5000,
              });
              assert.ok(typeof registration.clientId === 'string' && registration.clientId.length > 0);
              registered++;
            }, SERVER);
          } finally {
            await store.close();
          }
        }),
        fuzzParameters(),
      );
      assert.ok(registered > 0 && registered < fuzzRuns(), `registered ${registered} of ${fuzzRuns()}`);
    },
  );
});
