import * as oauth from 'oauth4webapi';

import { refreshTokenGrant } from '../../src/oauth/grants.js';
import { discover } from '../harness/index.js';
import { publicClientContext } from './public-client.js';

/**
 * Whether the AS still honours `refreshToken` for public client `clientId`: true when a real
 * refresh succeeds, false on `invalid_grant`. Anything else (network, 5xx) throws, so a
 * broken AS can never pass for a revoked token. (Introspection cannot answer this:
 * oidc-provider shows refresh tokens only to the client they were issued to.)
 */
export async function refreshAccepted(
  issuer: string,
  clientId: string,
  refreshToken: string,
  resource: string,
): Promise<boolean> {
  const metadata = await discover(issuer);
  const ctx = publicClientContext(metadata, clientId);
  try {
    await refreshTokenGrant(ctx, refreshToken, { resource, timeoutMs: 10_000 });
    return true;
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError && error.error === 'invalid_grant') return false;
    throw error;
  }
}
