import { canonicalServer, LOCAL_SUBJECT } from '../../credential/key.js';
import type { CredentialManager } from '../../lifecycle/manager.js';
import { idpLogoutServers } from '../../login/idp-session.js';
import { cancelDeviceLogin, pendingPrompt, serversAwaitingDeviceLogin } from '../../proxy/device-agent.js';
import type { CredentialStore } from '../../store/contract.js';
import type { CliIO } from '../io.js';
import { withManager } from '../session.js';

export interface LogoutOptions {
  strict: boolean;
  all: boolean;
  /** `server` is an enterprise IdP: log out of its session and what was derived from it. */
  idp?: boolean;
}

/** `latchkey logout <server>`, or `--all`: every stored server and every pending device login. */
export async function runLogout(
  io: CliIO,
  server: string | undefined,
  options: LogoutOptions,
): Promise<void> {
  await withManager(
    io,
    () => ({}),
    async (manager, store) => {
      const servers =
        server !== undefined
          ? options.idp === true
            ? await idpLogoutServers(store, server)
            : [server]
          : [
              ...new Set([
                ...(await store.listCredentials()).map((c) => c.key.server),
                ...(await serversAwaitingDeviceLogin(store)),
              ]),
            ];
      if (servers.length === 0) io.err('No stored credentials; nothing to do.\n');
      for (const each of servers) await logout(manager, store, io, each, options);
    },
  );
}

/**
 * Revoke at the AS and forget locally; every caveat in the report is printed. A device login
 * still waiting for the user's approval is cancelled too, or approving it later would log
 * the user back in.
 */
export async function logout(
  manager: CredentialManager,
  store: CredentialStore,
  io: CliIO,
  server: string,
  options: { strict: boolean },
): Promise<void> {
  const canonical = canonicalServer(server);
  const pending = await pendingPrompt(store, canonical);
  const reports = await manager.logout(server, { strict: options.strict });
  const deleted = reports.some((r) => r.deleted);
  const cancelled = await cancelDeviceLogin(store, canonical, LOCAL_SUBJECT, pending, deleted);
  if (cancelled !== undefined) {
    io.err(`Cancelled the device login for ${canonical} that was waiting for code ${cancelled.userCode}.\n`);
  }
  if (reports.length === 0) {
    if (cancelled === undefined) io.err(`Not logged in to ${server}; nothing to do.\n`);
    return;
  }
  for (const report of reports) {
    for (const note of report.notes) io.err(`note: ${note}\n`);
    const pending = report.deleted && (report.pendingRevocation?.length ?? 0) > 0;
    io.err(
      pending
        ? `Logged out of ${report.key.server} locally: the tokens are deleted here, but ${report.key.issuer} could not be reached to revoke them. The revocation is pending; later latchkey runs retry it until it succeeds or the tokens expire (see \`latchkey status\`).\n`
        : report.deleted
          ? `Logged out of ${report.key.server} (${report.key.issuer}).\n`
          : `Kept the credential for ${report.key.server}.\n`,
    );
  }
}
