// A credential stored as a finished login leaves it, without running latchkey's own login:
// tokens the harness AS issued through its real login and consent pages, or a made-up token
// for the tests that only read the store (the CLI's token, status and events; store URLs).
import { randomBytes } from 'node:crypto';

import type { AcquiredTokens } from '../../src/lifecycle/acquire.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { openStore } from '../../src/store/open.js';
import { obtainTokens, type TokenIssuer } from '../harness/index.js';

/**
 * Save `tokens` for `server` into `store` as a finished login does: through a quiet
 * CredentialManager (no watching, no proactive refresh), closed again after.
 */
export async function saveTokens(
  store: CredentialStore,
  server: string,
  tokens: AcquiredTokens,
): Promise<void> {
  const manager = new CredentialManager({
    store,
    logger: silentLogger,
    watch: false,
    proactiveRefresh: false,
  });
  try {
    await manager.saveAcquired(server, tokens);
  } finally {
    manager.close();
  }
}

/**
 * Sign `asUser` in at `as` for `server` and save the tokens into `store`: under the latchkey
 * `subject` (default: the manager's, `local`), `owned` by latchkey unless told (default true).
 */
export async function loginInto(
  store: CredentialStore,
  as: TokenIssuer,
  server: string,
  options: { asUser: string; subject?: string; owned?: boolean },
): Promise<void> {
  const tokens = await obtainTokens(as, { resource: server, subject: options.asUser });
  await saveTokens(store, server, {
    issuer: tokens.issuer,
    clientId: tokens.clientId,
    requestedAt: tokens.requestedAt,
    response: tokens.response,
    ...(options.subject === undefined ? {} : { subject: options.subject }),
    ...(options.owned === undefined ? {} : { owned: options.owned }),
  });
}

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
  try {
    await saveTokens(store, server, {
      issuer: 'https://as.example.com',
      clientId: 'seeded-test',
      requestedAt: Date.now(),
      response: { access_token: accessToken, token_type: 'Bearer', expires_in: 3600 },
    });
  } finally {
    await store.close();
  }
}
