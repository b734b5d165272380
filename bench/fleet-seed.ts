// Fill a fleet bench store through the store API: the client registration and AS metadata the
// refresh path reads, and `count` credentials of `count` subjects at one AS, written as a
// login would (generation 1, an `acquired` event), so due times come from the store's own
// due index code.
import { randomBytes } from 'node:crypto';

import type { CredentialKey } from '../src/credential/key.js';
import type { CredentialStore } from '../src/store/contract.js';

export const BENCH_SERVER = 'https://mcp.bench.example/mcp';
export const BENCH_CLIENT = 'latchkey-bench';

/** The registration and cached AS metadata a refresh of `issuer`'s credentials needs. */
export async function seedIssuer(store: CredentialStore, issuer: string): Promise<void> {
  await store.putRegistration({
    issuer,
    clientId: BENCH_CLIENT,
    tokenEndpointAuthMethod: 'none',
    method: 'pre-registered',
    registeredAt: Date.now(),
  });
  await store.putDiscovery({
    kind: 'authorization-server',
    id: issuer,
    document: { issuer, token_endpoint: `${issuer}/token`, grant_types_supported: ['refresh_token'] },
    sourceUrl: `${issuer}/.well-known/oauth-authorization-server`,
    fetchedAt: Date.now(),
  });
}

export interface SeedOptions {
  /** Subjects are `${prefix}-${i}`. */
  prefix: string;
  /** When the access tokens were obtained (ms). */
  obtainedAt: number;
  /** When they expire (ms). */
  expiresAt: number;
}

export const benchKey = (issuer: string, subject: string): CredentialKey => ({
  server: BENCH_SERVER,
  issuer,
  subject,
});

/** Write `count` credentials, 16 at a time (the pool's size is the limit, not this loop). */
export async function seedCredentials(
  store: CredentialStore,
  issuer: string,
  count: number,
  options: SeedOptions,
): Promise<CredentialKey[]> {
  const keys = Array.from({ length: count }, (_, i) => benchKey(issuer, `${options.prefix}-${i}`));
  for (let i = 0; i < keys.length; i += 16) {
    await Promise.all(
      keys.slice(i, i + 16).map(async (key) => {
        const result = await store.writeCredential(
          {
            key,
            secrets: {
              accessToken: randomBytes(24).toString('base64url'),
              refreshToken: randomBytes(24).toString('base64url'),
            },
            tokenType: 'Bearer',
            scopes: ['mcp'],
            clientId: BENCH_CLIENT,
            obtainedAt: options.obtainedAt,
            expiresAt: options.expiresAt,
            expirySource: 'expires_in',
            owned: true,
          },
          { expectedGeneration: 0 },
          { type: 'acquired', ...key, generation: 1 },
        );
        if (!result.ok) throw new Error(`seeding ${key.subject} failed: ${result.reason}`);
      }),
    );
  }
  return keys;
}
