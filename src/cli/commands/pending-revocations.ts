import type { PendingRevocation } from '../../store/contract.js';

/**
 * The "pending revocations" part of `latchkey status`: tokens deleted locally by a logout
 * whose revocation at the AS has not gone through yet. Never shows token text (the store's
 * listing holds none).
 */
export function pendingRevocationsJson(rows: readonly PendingRevocation[]) {
  return rows.map((r) => ({
    server: r.key.server,
    issuer: r.key.issuer,
    subject: r.key.subject,
    token: r.tokenType,
    attempts: r.attempts,
    nextAttemptAt: r.nextAttemptAt,
    expiresAt: r.expiresAt,
    ...(r.lastError === undefined ? {} : { lastError: r.lastError }),
  }));
}

const SERVER_WIDTH = 34;
const ERROR_WIDTH = 16;

/** A table that fits in 80 columns: long server URLs and errors are shortened with "…". */
export function pendingRevocationsTable(rows: readonly PendingRevocation[], now: number): string {
  if (rows.length === 0) return '';
  const lines = [
    'pending revocations (tokens deleted here, not yet revoked at the AS):',
    line(['SERVER', 'TOKEN', 'TRIES', 'NEXT TRY', 'LAST ERROR']),
    ...rows.map((r) =>
      line([
        r.key.server,
        r.tokenType === 'refresh_token' ? 'refresh' : 'access',
        String(r.attempts),
        r.nextAttemptAt <= now ? 'due now' : `in ${shortDuration(r.nextAttemptAt - now)}`,
        r.lastError ?? '-',
      ]),
    ),
  ];
  return lines.join('\n') + '\n';
}

function line([server, token, tries, next, error]: readonly string[]): string {
  return [
    clip(server ?? '', SERVER_WIDTH).padEnd(SERVER_WIDTH),
    (token ?? '').padEnd(7),
    (tries ?? '').padEnd(5),
    (next ?? '').padEnd(9),
    clip(error ?? '', ERROR_WIDTH),
  ]
    .join('  ')
    .trimEnd();
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

/** "42 s", "17 min", "3 h", "2 d": at most 6 characters. */
function shortDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}
