import { isUsable, proactiveRefreshAt } from '../../credential/expiry.js';
import type { CredentialState, StoredCredential } from '../../credential/model.js';
import { SecretRegistry, secrets } from '../../redact.js';
import { networkText } from '../../network-text.js';
import { connectedProcesses } from '../../proxy/presence.js';
import type { CredentialStore } from '../../store/contract.js';
import { middleEllipsis, TERMINAL_WIDTH, terminalSafe, wrap } from '../fit.js';
import type { CliIO } from '../io.js';
import { withStore } from '../open-store.js';
import { retryPendingRevocations } from '../session.js';
import { pendingRevocationsJson, pendingRevocationsTable } from './pending-revocations.js';

export interface StatusOptions {
  server?: string;
  json: boolean;
  /** The store does not exist yet (nothing was created to answer): where it will be. */
  missing?: string;
}

/** `latchkey status [server]`: due pending revocations are retried (bounded) before reporting. */
export async function runStatus(io: CliIO, options: { server?: string; json: boolean }): Promise<void> {
  await withStore(io, async (store, missing) => {
    // A store that does not exist yet has no pending revocations.
    if (missing === undefined) await retryPendingRevocations(store);
    await status(store, io, { ...options, ...(missing === undefined ? {} : { missing }) });
  });
}

/** One block per stored credential, plus the store's location and how its key is kept. */
export async function status(store: CredentialStore, io: CliIO, options: StatusOptions): Promise<void> {
  const filter = options.server === undefined ? {} : { server: options.server };
  const creds = await store.listCredentials(filter);
  const pending = await store.listPendingRevocations(filter);
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
    const revocations = pendingRevocationsJson(pending);
    io.out(
      JSON.stringify({ store: where, credentials: rows, pendingRevocations: revocations }, null, 2) + '\n',
    );
    return;
  }
  io.out(
    options.missing === undefined
      ? `store: ${where.location} (key: ${where.keySource})\n`
      : `store: ${where.location} (not created yet)\n`,
  );
  if (creds.length === 0) {
    io.out(`no credentials yet. Log in with: latchkey login ${options.server ?? '<server-url>'}\n`);
    if (pending.length > 0) io.out('\n' + pendingRevocationsTable(pending, now));
    return;
  }
  const summaries = creds.map((cred) => summary(cred, now));
  // One server asked for: every detail, one per line. All of them: a table that fits 80
  // columns, with the rest left to `status <server>` and `--json`.
  io.out(
    '\n' +
      (options.server === undefined
        ? credentialTable(summaries, now)
        : summaries.map((s) => detail(s, now)).join('\n')),
  );
  const live = creds.flatMap((c) => connected(c.key.server).map((p) => ({ server: c.key.server, ...p })));
  if (live.length > 0) {
    io.out('\nconnected:\n');
    for (const c of live) {
      const who = `latchkey proxy, pid ${c.pid} on ${c.host}, for ${duration(now - c.since)}`;
      io.out(`  ${middleEllipsis(c.server, Math.max(20, TERMINAL_WIDTH - who.length - 4))}  ${who}\n`);
    }
  }
  if (pending.length > 0) io.out('\n' + pendingRevocationsTable(pending, now));
}

type Summary = ReturnType<typeof summary>;

const ACCOUNT_WIDTH = 20;

/**
 * SERVER, ACCOUNT, STATE, EXPIRES (the access token) and REFRESH (is there a refresh
 * token): what tells at a glance whether each server will keep working. A URL too long for
 * its column goes on a line of its own, whole, so it can still be copied into a command;
 * only one longer than the terminal is shortened in the middle. Last errors follow the
 * table, wrapped.
 */
function credentialTable(rows: readonly Summary[], now: number): string {
  const header = ['SERVER', 'ACCOUNT', 'STATE', 'EXPIRES', 'REFRESH'];
  const cells = rows.map((s) => [
    s.server,
    middleEllipsis(terminalSafe(s.account ?? '-'), ACCOUNT_WIDTH),
    s.state,
    s.expiresAt === undefined
      ? 'unknown'
      : s.expiresAt > now
        ? `in ${duration(s.expiresAt - now)}`
        : 'expired',
    // An ID-JAG credential is renewed through the IdP session, not by a refresh token.
    s.idp !== undefined ? 'via IdP' : s.refreshable ? 'yes' : 'no',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const others = widths.slice(1).reduce((sum, w) => sum + w + 2, 0);
  // The SERVER column is as wide as the longest URL that fits beside the others.
  const room = TERMINAL_WIDTH - others;
  widths[0] = Math.max('SERVER'.length, ...rows.map((s) => s.server.length).filter((n) => n <= room));
  const line = (row: readonly string[]): string =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd() + '\n';
  let out = line(header);
  for (const row of cells) {
    const [server = '', ...rest] = row;
    if (server.length <= (widths[0] ?? 0)) out += line(row);
    else out += `${middleEllipsis(server, TERMINAL_WIDTH)}\n` + line(['', ...rest]);
  }
  const failing = rows.filter((s) => s.lastError !== undefined);
  if (failing.length > 0) out += '\n';
  for (const s of failing) {
    out += wrap(`${s.server}: ${terminalSafe(s.lastError ?? '')}`, TERMINAL_WIDTH, 4).join('\n') + '\n';
  }
  return out;
}

/** `latchkey status <server>`: every stored fact about each credential, wrapped to 80 columns. */
function detail(s: Summary, now: number): string {
  const facts: [string, string][] = [
    [
      'account',
      s.account === undefined ? '- (the authorization server did not say)' : terminalSafe(s.account),
    ],
    ['issuer', s.issuer],
    ['source', source(s)],
    ['subject', s.subject],
    ['state', s.state],
    ['access token', describeExpiry(s.expiresAt, now, 'no expiry given (valid until rejected)')],
    [
      'refresh token',
      s.refreshable ? `yes, ${describeExpiry(s.refreshTokenExpiresAt, now, 'no expiry')}` : 'none',
    ],
    ['last refresh', s.lastRefreshAt === undefined ? 'never' : ago(now - s.lastRefreshAt)],
    ['scopes', s.scopes.length === 0 ? '-' : s.scopes.join(' ')],
    ['generation', String(s.generation)],
    ['last error', s.lastError === undefined ? '-' : terminalSafe(s.lastError)],
  ];
  const indent = Math.max(...facts.map(([name]) => name.length)) + 4;
  const fact = ([name, value]: [string, string]): string =>
    wrap(value, TERMINAL_WIDTH - indent, 0)
      .map((text, i) => (i === 0 ? `  ${name}`.padEnd(indent) : ' '.repeat(indent)) + text)
      .join('\n');
  return `${middleEllipsis(s.server, TERMINAL_WIDTH)}\n${facts.map(fact).join('\n')}\n`;
}

function summary(cred: StoredCredential, now: number) {
  return {
    server: cred.key.server,
    issuer: cred.key.issuer,
    subject: cred.key.subject,
    ...(cred.account === undefined ? {} : { account: cred.account }),
    ...(cred.idp === undefined ? {} : { idp: cred.idp }),
    ...(cred.idpSession === true ? { idpSession: true } : {}),
    state: state(cred, now),
    expiresAt: cred.expiresAt,
    refreshable: cred.secrets.refreshToken !== undefined,
    refreshTokenExpiresAt: cred.refreshTokenExpiresAt,
    scopes: cred.scopes,
    generation: cred.generation,
    lastRefreshAt: cred.status.lastRefreshAt,
    failures: cred.status.failures,
    lastError: lastErrorText(cred),
  };
}

/** Where the tokens came from: a login, the IdP session itself, or an ID-JAG from it. */
function source(s: Summary): string {
  if (s.idpSession === true) return 'enterprise identity provider session (login --idp)';
  if (s.idp !== undefined) return `ID-JAG from the identity provider ${s.idp} (logout --idp removes it)`;
  return 'login';
}

/**
 * The stored last error, made safe again on the way out: a store written by an older latchkey
 * may hold an AS's words raw, and this credential's own tokens are the ones an AS would echo.
 */
function lastErrorText(cred: StoredCredential): string | undefined {
  const message = cred.status.lastError?.message;
  if (message === undefined) return undefined;
  const own = new SecretRegistry();
  own.add(cred.secrets.accessToken);
  own.add(cred.secrets.refreshToken);
  return networkText(secrets.scrub(message), { secrets: own });
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
