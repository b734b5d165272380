import { isUsable, proactiveRefreshAt } from '../../credential/expiry.js';
import type { CredentialState, StoredCredential } from '../../credential/model.js';
import { connectedProcesses } from '../../proxy/presence.js';
import type { CredentialStore } from '../../store/contract.js';
import type { CliIO } from '../io.js';

export interface StatusOptions {
  server?: string;
  json: boolean;
}

/** One block per stored credential, plus the store's location and how its key is kept. */
export async function status(store: CredentialStore, io: CliIO, options: StatusOptions): Promise<void> {
  const creds = await store.listCredentials(options.server === undefined ? {} : { server: options.server });
  const now = Date.now();
  const connections = await connectedProcesses(store, options.server).catch(() => []);
  const connected = (server: string) =>
    connections
      .filter((c) => c.key.server === server)
      .map((c) => ({ pid: c.pid, host: c.host, since: c.acquiredAt }));
  if (options.json) {
    const rows = creds.map((c) => ({ ...summary(c, now), connections: connected(c.key.server) }));
    io.out(JSON.stringify({ store: store.security, credentials: rows }, null, 2) + '\n');
    return;
  }
  io.out(`store: ${store.security.location} (key: ${store.security.keySource})\n`);
  if (creds.length === 0) {
    io.out('no credentials stored. Log in with: latchkey login <server-url>\n');
    return;
  }
  for (const cred of creds) {
    const s = summary(cred, now);
    io.out(`\n${s.server}  ${s.state}\n`);
    io.out(`  account:       ${s.subject} at ${s.issuer}\n`);
    io.out(`  access token:  ${describeExpiry(s.expiresAt, now)}\n`);
    io.out(
      `  refresh token: ${s.refreshable ? describeExpiry(s.refreshTokenExpiresAt, now, 'present') : 'none'}\n`,
    );
    if (s.scopes.length > 0) io.out(`  scopes:        ${s.scopes.join(' ')}\n`);
    if (s.lastRefreshAt !== undefined) io.out(`  last refresh:  ${ago(now - s.lastRefreshAt)}\n`);
    if (s.lastError !== undefined) io.out(`  last error:    ${s.lastError}\n`);
    for (const c of connected(cred.key.server)) {
      io.out(`  connected:     latchkey proxy, pid ${c.pid} on ${c.host}, for ${duration(now - c.since)}\n`);
    }
  }
}

function summary(cred: StoredCredential, now: number) {
  return {
    server: cred.key.server,
    issuer: cred.key.issuer,
    subject: cred.key.subject,
    state: state(cred, now),
    expiresAt: cred.expiresAt,
    refreshable: cred.secrets.refreshToken !== undefined,
    refreshTokenExpiresAt: cred.refreshTokenExpiresAt,
    scopes: cred.scopes,
    generation: cred.generation,
    lastRefreshAt: cred.status.lastRefreshAt,
    failures: cred.status.failures,
    lastError: cred.status.lastError?.message,
  };
}

/** The stored state, plus `refresh-due` (past the proactive point) and expired-but-refreshable. */
function state(cred: StoredCredential, now: number): CredentialState | 'expired' {
  if (cred.status.state !== 'valid') return cred.status.state;
  if (!isUsable(cred, now)) return cred.secrets.refreshToken === undefined ? 'expired' : 'refresh-due';
  return now >= proactiveRefreshAt(cred) ? 'refresh-due' : 'valid';
}

function describeExpiry(
  at: number | undefined,
  now: number,
  unknown = 'no expiry given (valid until rejected)',
): string {
  if (at === undefined) return unknown;
  return at > now ? `expires in ${duration(at - now)}` : `expired ${duration(now - at)} ago`;
}

function ago(ms: number): string {
  return `${duration(ms)} ago`;
}

/** Human durations: "42 s", "17 min", "3 h", "2 days". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}
