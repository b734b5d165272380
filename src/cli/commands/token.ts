import type { CredentialManager } from '../../lifecycle/manager.js';
import type { CliIO } from '../io.js';
import { withManager } from '../session.js';

/**
 * Print a currently valid access token for `server` on stdout, refreshing it if needed. For
 * scripts (`curl -H "Authorization: Bearer $(latchkey token URL)"`); the token goes to the
 * pipe only and is never logged.
 */
export async function token(manager: CredentialManager, io: CliIO, server: string): Promise<void> {
  io.out((await manager.getAccessToken(server)) + '\n');
}

export async function runToken(io: CliIO, server: string): Promise<void> {
  await withManager(
    io,
    () => ({}),
    (manager) => token(manager, io, server),
  );
}
