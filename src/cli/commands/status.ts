import { isUsable, proactiveRefreshAt } from '../../credential/expiry.js';
import type { CredentialState, StoredCredential } from '../../credential/model.js';
import { connectedProcesses } from '../../proxy/presence.js';
import type { CredentialStore } from '../../store/contract.js';
import type { CliIO } from '../io.js';

export interface StatusOptions {
  server?: string;
  json: boolean;
  /** The store does not exist yet (nothing was created to answer): where it will be. */
  missing?: string;
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
  const where =
    options.missing === undefined
      ? store.security
      : { keySource: 'none', insecure: false, location: options.missing, exists: false };
  if (options.json) {
    const rows = creds.map((c) => ({ ...summary(c, now), connections: connected(c.key.server) }));
    io.out(JSON.stringify({ store: where, credentials: rows }, null, 2) + '\n');
    return;
  }
  io.out(
    options.missing === undefined
      ? `store: ${where.location} (key: ${where.keySource})\n`
      : `store: ${where.location} (not created yet)\n`,
  );
  if (creds.length === 0) {
    io.out('no credentials yet. Log in with: latchkey login <server-url>\n');
    return;
  }
  const rows = creds.map((cred) => {
    const s = summary(cred, now);
    return [
      s.server,
      `${s.account ?? s.subject} at ${hostOf(s.issuer)}`,
      s.state,
      describeExpiry(s.expiresAt, now, 'no expiry (valid until rejected)'),
      s.refreshable ? `yes, ${describeExpiry(s.refreshTokenExpiresAt, now, 'no expiry')}` : 'none',
      s.lastRefreshAt === undefined ? 'never' : ago(now - s.lastRefreshAt),
      s.scopes.length === 0 ? '-' : s.scopes.join(' '),
      s.lastError ?? '-',
    ];
  });
  io.out(
    '\n' +
      table(
        [
          'SERVER',
          'ACCOUNT',
          'STATE',
          'ACCESS TOKEN',
          'REFRESH TOKEN',
          'LAST REFRESH',
          'SCOPES',
          'LAST ERROR',
        ],
        rows,
      ),
  );
  const live = creds.flatMap((c) => connected(c.key.server).map((p) => ({ server: c.key.server, ...p })));
  if (live.length > 0) {
    io.out('\nconnected:\n');
    for (const c of live) {
      io.out(`  ${c.server}  latchkey proxy, pid ${c.pid} on ${c.host}, for ${duration(now - c.since)}\n`);
    }
  }
}

/** Columns padded to their widest cell; the last column is not padded. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd() + '\n';
  return [header, ...rows].map(line).join('');
}

function hostOf(issuer: string): string {
  try {
    return new URL(issuer).host;
  } catch {
    return issuer;
  }
}

function summary(cred: StoredCredential, now: number) {
  return {
    server: cred.key.server,
    issuer: cred.key.issuer,
    subject: cred.key.subject,
    ...(cred.account === undefined ? {} : { account: cred.account }),
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
