/**
 * The demo's authorization server (src/demo/authorization-server.ts) with what only tests
 * do to it: shorten token lifetimes mid-test, revoke a user's grants server-side, and forget
 * registered clients as an AS restarted with in-memory storage would.
 */
import {
  type AuthorizationServer,
  type AuthorizationServerOptions,
  positiveInteger,
  startAuthorizationServer as startDemoAuthorizationServer,
} from '../../src/demo/authorization-server.js';
import { ProviderStorage } from '../../src/demo/memory-adapter.js';

export type TestAuthorizationServerOptions = Omit<
  AuthorizationServerOptions,
  'accessTokenTtl' | 'storage'
> & {
  /** Access-token lifetime in whole seconds (>= 1). Default 10. Change later with setAccessTokenTtl. */
  accessTokenTtl?: number;
};

export interface TestAuthorizationServer extends AuthorizationServer {
  /** Lifetime of access tokens issued from now on (whole seconds >= 1). */
  setAccessTokenTtl(seconds: number): void;
  /** The user revokes access: every grant's tokens die. Returns the number of grants revoked. */
  revokeAllGrants(): Promise<number>;
  /** Revoke only the grants of one subject. */
  revokeGrants(subject: string): Promise<number>;
  /**
   * Forget every dynamically registered client, as an AS with in-memory storage does on
   * restart. Returns how many were forgotten.
   */
  forgetRegisteredClients(): number;
}

export async function startAuthorizationServer(
  options: TestAuthorizationServerOptions = {},
): Promise<TestAuthorizationServer> {
  const storage = new ProviderStorage();
  let ttl = positiveInteger(options.accessTokenTtl ?? 10, 'accessTokenTtl');
  const as = await startDemoAuthorizationServer({ ...options, storage, accessTokenTtl: () => ttl });
  const revoke = (subject?: string): number => {
    const ids = storage.grantIds(subject);
    for (const id of ids) storage.revokeGrant(id);
    return ids.length;
  };
  return {
    ...as,
    setAccessTokenTtl(seconds) {
      ttl = positiveInteger(seconds, 'accessTokenTtl');
    },
    revokeAllGrants: async () => revoke(),
    revokeGrants: async (subject) => revoke(subject),
    forgetRegisteredClients: () => storage.deleteModel('Client'),
  };
}
