import type { AccessToken } from '../../lifecycle/token-cache.js';
import type { CredentialStore } from '../../store/contract.js';
import type { CliIO } from '../io.js';

/**
 * After a login (run even when a valid credential exists), say which server and account were
 * authorized, where the credential lives, and anything that will bite later: no refresh
 * token means another login when the access token expires.
 */
export async function login(token: AccessToken, store: CredentialStore, io: CliIO): Promise<void> {
  const expiry =
    token.expiresAt === undefined ? 'no expiry given' : `expires ${new Date(token.expiresAt).toISOString()}`;
  const scopes = token.scopes.length === 0 ? '' : `, scopes: ${token.scopes.join(' ')}`;
  const [cred] = await store.listCredentials({
    server: token.server,
    issuer: token.issuer,
    subject: token.subject,
  });
  const account = cred?.account === undefined ? '' : ` as ${cred.account}`;
  io.err(`Logged in to ${token.server}${account} at ${token.issuer} (${expiry}${scopes}).\n`);
  io.err(`Credential stored in ${store.security.location} (key: ${store.security.keySource}).\n`);
  if (cred !== undefined && cred.secrets.refreshToken === undefined) {
    io.err(
      `warning: ${token.issuer} issued no refresh token, so you will have to log in again when the access ` +
        'token expires. The authorization server may not allow the refresh_token grant for this client, or may ' +
        'want the offline_access scope (try `--offline-access`).\n',
    );
  }
}
