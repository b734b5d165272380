import type { CredentialManager } from '../../lifecycle/manager.js';
import type { CliIO } from '../io.js';

/** Revoke at the AS and forget locally; every caveat in the report is printed. */
export async function logout(
  manager: CredentialManager,
  io: CliIO,
  server: string,
  options: { strict: boolean },
): Promise<void> {
  const reports = await manager.logout(server, { strict: options.strict });
  if (reports.length === 0) {
    io.err(`Not logged in to ${server}; nothing to do.\n`);
    return;
  }
  for (const report of reports) {
    for (const note of report.notes) io.err(`note: ${note}\n`);
    io.err(
      report.deleted
        ? `Logged out of ${report.key.server} (${report.key.issuer}).\n`
        : `Kept the credential for ${report.key.server}.\n`,
    );
  }
}
