// A credential stored as a finished login leaves it, without running one: for the tests of
// what reads the store (the CLI's token, status and events; which store a URL opens).
import { randomBytes } from 'node:crypto';

import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { openStore } from '../../src/store/open.js';

/**
 * Save a one-hour Bearer `accessToken` for `server` (issuer https://as.example.com) into the
 * store `env` names (LATCHKEY_STORE, else the SQLite store in LATCHKEY_HOME).
 */
export async function seedCredential(
  env: NodeJS.ProcessEnv,
  server: string,
  accessToken = randomBytes(24).toString('hex'),
): Promise<void> {
  const store = await openStore(undefined, { env });
  const manager = new CredentialManager({
    store,
    logger: silentLogger,
    watch: false,
    proactiveRefresh: false,
  });
  try {
    await manager.saveAcquired(server, {
      issuer: 'https://as.example.com',
      clientId: 'seeded-test',
      requestedAt: Date.now(),
      response: { access_token: accessToken, token_type: 'Bearer', expires_in: 3600 },
    });
  } finally {
    manager.close();
    await store.close();
  }
}
