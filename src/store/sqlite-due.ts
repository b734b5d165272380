import { dueAt, notBefore, refreshPointAt } from '../credential/due.js';
import type { CredentialStatus, StoredCredential } from '../credential/model.js';
import type { CredentialKey } from '../credential/key.js';
import type { DueClaim, DueIndex } from './contract.js';
import { UnknownDataKeyError } from './envelope.js';
import { keyParams, type SqliteConnection } from './sqlite-connection.js';
import { acquire, leaseOf } from './sqlite-leases.js';
import { type CredentialRow, openCredential } from './rows.js';

/**
 * The due index on SQLite: `refresh_at` and `due_at` columns kept by every credential write
 * (sqlite-credentials.ts), a partial index on `due_at`, and claims that take leases in the
 * same IMMEDIATE transaction as the scan, so two processes never claim the same row.
 */
export function sqliteDueIndex(conn: SqliteConnection): DueIndex {
  return {
    claimDueCredentials: async (claim) => {
      const { claimed, takeovers } = await conn.write(() => claimDue(conn, claim));
      for (const [key, owner] of takeovers) claim.onTakeover?.(key, owner);
      return claimed;
    },
    countDue: (now) =>
      conn.run(
        () =>
          conn.db
            .prepare('SELECT COUNT(*) FROM credentials WHERE due_at IS NOT NULL AND due_at <= ?')
            .pluck()
            .get(now ?? Date.now()) as number,
      ),
    nextDueAt: (options = {}) => conn.run(() => nextDue(conn, options.excludeIssuers ?? [])),
  };
}

/**
 * `due_at` after a status change, from the row's own `refresh_at` (SQL mirror of `dueAt`):
 * never due at needs-login, else not before the status's next attempt.
 */
export const DUE_FROM_STATUS =
  'CASE WHEN @blocked = 1 OR refresh_at IS NULL THEN NULL ELSE MAX(refresh_at, @notBefore) END';

export function dueParams(status: CredentialStatus): { blocked: number; notBefore: number } {
  return { blocked: status.state === 'needs-login' ? 1 : 0, notBefore: notBefore(status) };
}

const LIVE_LEASE = `EXISTS (SELECT 1 FROM leases l WHERE l.server = c.server AND l.issuer = c.issuer
  AND l.subject = c.subject AND l.expires_at > @clock)`;

interface Claimed {
  claimed: StoredCredential[];
  /** Claimed keys whose (expired) lease was another holder's, with that holder. */
  takeovers: [CredentialKey, string][];
}

function claimDue(conn: SqliteConnection, claim: DueClaim): Claimed {
  const clock = Date.now();
  const rows = conn.db
    .prepare(
      `SELECT c.* FROM credentials c
       WHERE c.due_at IS NOT NULL AND c.due_at <= @now
         AND c.issuer NOT IN (SELECT value FROM json_each(@excluded))
         AND NOT ${LIVE_LEASE}
       ORDER BY c.due_at LIMIT @limit`,
    )
    .all({
      now: claim.now ?? clock,
      clock,
      excluded: JSON.stringify(claim.excludeIssuers ?? []),
      limit: Math.max(0, Math.floor(claim.limit)),
    }) as CredentialRow[];
  const claimed: StoredCredential[] = [];
  const takeovers: [CredentialKey, string][] = [];
  for (const row of rows) {
    const cred = openable(conn, row);
    if (cred === undefined) continue;
    const prior = leaseOf(conn, cred.key)?.owner;
    if (acquire(conn, keyParams(cred.key), claim.holder, claim.ttlMs) === undefined) continue;
    claimed.push(cred);
    if (prior !== undefined && prior !== claim.holder.owner) takeovers.push([cred.key, prior]);
  }
  return { claimed, takeovers };
}

/**
 * A row sealed under another data key cannot be refreshed by anyone holding this one. It
 * leaves the due index (a new login rewrites it) instead of failing every claim, or filling
 * every batch, from now on; reads of it keep reporting STORE_KEY_MISMATCH.
 */
function openable(conn: SqliteConnection, row: CredentialRow): StoredCredential | undefined {
  try {
    return openCredential(conn.box, row);
  } catch (error) {
    // Sealed by a data key this process has not loaded yet (another process rotated): not
    // unreadable. The connection reloads its keys and runs the claim again.
    if (error instanceof UnknownDataKeyError) throw error;
    conn.db
      .prepare(
        'UPDATE credentials SET due_at = NULL WHERE server = @server AND issuer = @issuer AND subject = @subject',
      )
      .run({ server: row.server, issuer: row.issuer, subject: row.subject });
    return undefined;
  }
}

function nextDue(conn: SqliteConnection, excluded: readonly string[]): number | undefined {
  const next = conn.db
    .prepare(
      `SELECT MIN(CASE WHEN l.expires_at > @clock THEN MAX(c.due_at, l.expires_at) ELSE c.due_at END)
       FROM credentials c LEFT JOIN leases l
         ON l.server = c.server AND l.issuer = c.issuer AND l.subject = c.subject
       WHERE c.due_at IS NOT NULL AND c.issuer NOT IN (SELECT value FROM json_each(@excluded))`,
    )
    .pluck()
    .get({ clock: Date.now(), excluded: JSON.stringify(excluded) }) as number | null;
  return next ?? undefined;
}

/**
 * Fill `refresh_at` / `due_at` of rows written before migration 3 (it leaves a marker in
 * `meta`). Needs the data key: whether a row has a refresh token is sealed. A row that cannot
 * be opened stays never-due; every read of it fails the same way, and a new login rewrites it.
 */
export function backfillDueIndex(conn: SqliteConnection): void {
  const pending = conn.db.prepare(`SELECT 1 FROM meta WHERE name = 'due_backfill'`).pluck().get();
  if (pending === undefined) return;
  conn.db
    .transaction(() => {
      const rows = conn.db.prepare('SELECT * FROM credentials').all() as CredentialRow[];
      const update = conn.db.prepare(
        `UPDATE credentials SET refresh_at = @refreshAt, due_at = @dueAt
         WHERE server = @server AND issuer = @issuer AND subject = @subject`,
      );
      for (const row of rows) {
        let cred: StoredCredential;
        try {
          cred = openCredential(conn.box, row);
        } catch (error) {
          if (error instanceof UnknownDataKeyError) throw error; // a rotation: reload, run again
          continue;
        }
        const refreshAt = refreshPointAt(cred);
        update.run({
          ...keyParams(cred.key),
          refreshAt: refreshAt ?? null,
          dueAt: dueAt(refreshAt, cred.status) ?? null,
        });
      }
      conn.db.prepare(`DELETE FROM meta WHERE name = 'due_backfill'`).run();
    })
    .immediate();
}
