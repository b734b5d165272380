import type { StoredCredential } from '../../credential/model.js';
import type { CredentialStore } from '../../store/contract.js';
import type { CliIO } from '../io.js';

export interface StatusOptions {
  server?: string;
  json: boolean;
}

/** One line per stored credential, plus the store's location and how its key is kept. */
export async function status(store: CredentialStore, io: CliIO, options: StatusOptions): Promise<void> {
  const creds = await store.listCredentials(options.server === undefined ? {} : { server: options.server });
  const now = Date.now();
  if (options.json) {
    io.out(
      JSON.stringify({ store: store.security, credentials: creds.map((c) => summary(c, now)) }, null, 2) +
        '\n',
    );
    return;
  }
  io.out(`store: ${store.security.location} (key: ${store.security.keySource})\n`);
  if (creds.length === 0) {
    io.out('no credentials stored. Log in with: latchkey login <server-url>\n');
    return;
  }
  for (const cred of creds) {
    const s = summary(cred, now);
    io.out(`${s.server}  ${s.state}  ${s.expires}  subject=${s.subject}  issuer=${s.issuer}\n`);
    if (s.lastError !== undefined) io.out(`    last error: ${s.lastError}\n`);
  }
}

function summary(cred: StoredCredential, now: number) {
  return {
    server: cred.key.server,
    issuer: cred.key.issuer,
    subject: cred.key.subject,
    state: cred.status.state,
    expires:
      cred.expiresAt === undefined
        ? 'no expiry (valid until rejected)'
        : cred.expiresAt > now
          ? `expires in ${formatDuration(cred.expiresAt - now)}`
          : `expired ${formatDuration(now - cred.expiresAt)} ago`,
    refreshable: cred.secrets.refreshToken !== undefined,
    scopes: cred.scopes,
    generation: cred.generation,
    lastError: cred.status.lastError?.message,
  };
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}
