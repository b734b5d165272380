import type { CredentialManager } from '../../lifecycle/manager.js';
import type { CliIO } from '../io.js';

export interface LoginCommandOptions {
  scopes?: readonly string[];
}

/** Log in now (even when a valid credential exists) and say where the result went. */
export async function login(
  manager: CredentialManager,
  io: CliIO,
  server: string,
  options: LoginCommandOptions,
): Promise<void> {
  const token = await manager.login(server, options.scopes === undefined ? {} : { scopes: options.scopes });
  const expiry =
    token.expiresAt === undefined ? 'no expiry' : `expires ${new Date(token.expiresAt).toISOString()}`;
  const scopes = token.scopes.length === 0 ? '' : `, scopes: ${token.scopes.join(' ')}`;
  io.err(`Logged in to ${token.server} (${expiry}${scopes}).\n`);
}
