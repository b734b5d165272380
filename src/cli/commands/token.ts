import type { CredentialManager } from '../../lifecycle/manager.js';
import type { CliIO } from '../io.js';

/**
 * Print a currently valid access token for `server` on stdout, refreshing it if needed. For
 * scripts (`curl -H "Authorization: Bearer $(latchkey token URL)"`); the token goes to the
 * pipe only and is never logged.
 */
export async function token(manager: CredentialManager, io: CliIO, server: string): Promise<void> {
  io.out((await manager.getAccessToken(server)) + '\n');
}
