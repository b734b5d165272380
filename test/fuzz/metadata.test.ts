// Fuzz: the discovery chain against hostile metadata documents (RFC 9728 protected resource
// metadata, RFC 8414 / OIDC authorization server metadata) and redirects. Bodies are served
// by an in-process fetch: 100 000 cases through real sockets would take hours, and a
// Response object carries any status, header and body a server could send.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { discoverServer } from '../../src/oauth/discovery.js';
import { validateResourceMetadata } from '../../src/oauth/resource-metadata.js';
import { validateAuthorizationServerMetadata } from '../../src/oauth/server-metadata.js';
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
} from './hostile.js';

const SERVER = 'https://mcp.example.com/mcp';
const ISSUER = 'https://as.example.com';

const PRM = {
  resource: SERVER,
  authorization_servers: [ISSUER],
  scopes_supported: ['read', 'write'],
  bearer_methods_supported: ['header'],
};
const AS_METADATA = {
  issuer: ISSUER,
  authorization_endpoint: `${ISSUER}/authorize`,
  token_endpoint: `${ISSUER}/token`,
  registration_endpoint: `${ISSUER}/register`,
  revocation_endpoint: `${ISSUER}/revoke`,
  device_authorization_endpoint: `${ISSUER}/device`,
  jwks_uri: `${ISSUER}/jwks`,
  code_challenge_methods_supported: ['S256'],
  grant_types_supported: ['authorization_code', 'refresh_token'],
  response_types_supported: ['code'],
  token_endpoint_auth_methods_supported: ['none'],
  mtls_endpoint_aliases: { token_endpoint: `${ISSUER}/mtls/token` },
  client_id_metadata_document_supported: true,
};

const answer = (template: Record<string, unknown>) =>
  fc.record({
    status: fc.oneof({ weight: 4, arbitrary: fc.constant(200) }, { weight: 1, arbitrary: hostileStatus }),
    body: hostileBody(template),
    headers: hostileHeaders,
  });

describe('fuzz: metadata documents', () => {
  it(
    'validating a resource metadata document fails only with DISCOVERY_FAILED',
    { timeout: fuzzTimeoutMs(2) },
    async () => {
      await fc.assert(
        fc.asyncProperty(mutatedObject(PRM), async (document) => {
          const location = {
            url: `https://mcp.example.com/.well-known/oauth-protected-resource/mcp`,
            position: 'path' as const,
          };
          await failsOnlyTyped(() => validateResourceMetadata(document, SERVER, location), SERVER);
        }),
        fuzzParameters(),
      );
    },
  );

  it(
    'validating an authorization server metadata document fails only with DISCOVERY_FAILED',
    { timeout: fuzzTimeoutMs(2) },
    async () => {
      await fc.assert(
        fc.asyncProperty(mutatedObject(AS_METADATA), async (document) => {
          await failsOnlyTyped(() => validateAuthorizationServerMetadata(document, ISSUER, SERVER), SERVER);
        }),
        fuzzParameters(),
      );
    },
  );

  it(
    'the whole discovery chain fails only with a LatchkeyError naming the server',
    { timeout: fuzzTimeoutMs(10) },
    async () => {
      const outcomes = { found: 0, refused: 0 };
      await fc.assert(
        fc.asyncProperty(
          fc.array(answer(PRM), { minLength: 1, maxLength: 3 }),
          fc.array(answer(AS_METADATA), { minLength: 1, maxLength: 4 }),
          async (prms, metadatas) => {
            let p = 0;
            let m = 0;
            const fetch = async (input: string | URL | Request): Promise<Response> => {
              const url = String(input instanceof Request ? input.url : input);
              const pick = url.includes('oauth-protected-resource')
                ? prms[p++ % prms.length]
                : metadatas[m++ % metadatas.length];
              assert.ok(pick !== undefined);
              return response(pick.status, pick.body, pick.headers);
            };
            const store = createMemoryStore();
            try {
              await failsOnlyTyped(async () => {
                const found = await discoverServer(SERVER, {
                  store,
                  fetch: fetch as typeof globalThis.fetch,
                  timeoutMs: 5000,
                });
                // Whatever was accepted is usable: an https issuer with an https token endpoint.
                assert.ok(found.authorizationServer.issuer.startsWith('https://'));
                outcomes.found++;
              }, SERVER);
            } finally {
              await store.close();
            }
          },
        ),
        fuzzParameters(),
      );
      // Both ends were reached: hostile documents were refused and usable ones accepted.
      outcomes.refused = fuzzRuns() - outcomes.found;
      assert.ok(outcomes.found > 0 && outcomes.refused > 0, JSON.stringify(outcomes));
    },
  );
});
