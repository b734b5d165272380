import type { StoredCredential } from '../credential/model.js';
import type { DueClaim, DueIndex } from './contract.js';
import {
  DB_NOW_MS,
  decodeKey,
  KEY_WHERE,
  keyValues,
  pgText,
  type PgConnection,
  type Queryable,
} from './postgres-connection.js';
import { UnknownDataKeyError } from './envelope.js';
import { type CredentialRow, openCredential } from './rows.js';

const LIVE_LEASE = `EXISTS (SELECT 1 FROM leases l WHERE l.server = c.server AND l.issuer = c.issuer
  AND l.subject = c.subject AND l.expires_at > clock.now)`;

/**
 * The due index on Postgres: `refresh_at` / `due_at` kept by every credential write
 * (postgres-credentials.ts) with a partial index on `due_at`. A claim is one transaction on
 * the database clock: due rows with no live lease, earliest first, picked `FOR UPDATE SKIP
 * LOCKED` so N instances take disjoint batches without waiting on each other, then leased
 * with the same conditional upsert as `acquireLease`.
 */
export function pgDueIndex(conn: PgConnection): DueIndex {
  return {
    claimDueCredentials: async (claim) => {
      const { claimed, takeovers } = await conn.tx((client) => claimDue(conn, client, claim));
      for (const [cred, owner] of takeovers) claim.onTakeover?.(cred.key, owner);
      return claimed;
    },
    countDue: (now) =>
      conn.run(async () => {
        const { rows } = await conn.pool.query<{ n: number }>(
          `SELECT count(*)::bigint AS n FROM credentials
           WHERE due_at IS NOT NULL AND due_at <= COALESCE($1::bigint, ${DB_NOW_MS})`,
          [now ?? null],
        );
        return Number(rows[0]?.n ?? 0);
      }),
    nextDueAt: (options = {}) =>
      conn.run(async () => {
        const { rows } = await conn.pool.query<{ next: number | null }>(
          `WITH clock AS (SELECT ${DB_NOW_MS} AS now)
           SELECT MIN(CASE WHEN l.expires_at > clock.now THEN GREATEST(c.due_at, l.expires_at)
                      ELSE c.due_at END) AS next
           FROM clock, credentials c LEFT JOIN leases l
             ON l.server = c.server AND l.issuer = c.issuer AND l.subject = c.subject
           WHERE c.due_at IS NOT NULL AND NOT (c.issuer = ANY($1::text[]))`,
          [(options.excludeIssuers ?? []).map(pgText)],
        );
        return rows[0]?.next ?? undefined;
      }),
  };
}

interface Claimed {
  claimed: StoredCredential[];
  /** Claimed credentials whose (expired) lease was another holder's, with that holder. */
  takeovers: [StoredCredential, string][];
}

async function claimDue(conn: PgConnection, client: Queryable, claim: DueClaim): Promise<Claimed> {
  const { rows } = await client.query<CredentialRow>(
    `WITH clock AS (SELECT ${DB_NOW_MS} AS now)
     SELECT c.* FROM credentials c, clock
     WHERE c.due_at IS NOT NULL AND c.due_at <= COALESCE($1::bigint, clock.now)
       AND NOT (c.issuer = ANY($2::text[]))
       AND NOT ${LIVE_LEASE}
     ORDER BY c.due_at LIMIT $3
     FOR UPDATE OF c SKIP LOCKED`,
    [claim.now ?? null, (claim.excludeIssuers ?? []).map(pgText), Math.max(0, Math.floor(claim.limit))],
  );
  const opened: StoredCredential[] = [];
  for (const row of rows) {
    const cred = await openable(conn, client, row);
    if (cred !== undefined) opened.push(cred);
  }
  const leased = await leaseAll(client, opened, claim);
  const claimed = opened.filter((cred) => leased.has(keyValues(cred.key).join('\u0000')));
  const takeovers: [StoredCredential, string][] = [];
  for (const cred of claimed) {
    const prior = leased.get(keyValues(cred.key).join('\u0000'));
    if (prior !== undefined && prior !== null && prior !== claim.holder.owner) takeovers.push([cred, prior]);
  }
  return { claimed, takeovers };
}

/**
 * The claim's leases in one upsert, with `acquireLease`'s condition per row (free, expired,
 * or already this holder's), on the database clock. Returns the keys it took, each with the
 * owner of the lease row it replaced (null when there was none). All parts of one WITH
 * statement see the same snapshot, so `held` is the rows as they were before the upsert.
 */
async function leaseAll(
  client: Queryable,
  creds: StoredCredential[],
  claim: DueClaim,
): Promise<Map<string, string | null>> {
  if (creds.length === 0) return new Map();
  const cols: [string[], string[], string[]] = [[], [], []];
  for (const cred of creds) keyValues(cred.key).forEach((v, c) => cols[c]?.push(v));
  const { holder } = claim;
  const { rows } = await client.query<{
    server: string;
    issuer: string;
    subject: string;
    prior: string | null;
  }>(
    `WITH clock AS (SELECT ${DB_NOW_MS} AS now),
     claim_keys AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS k(server, issuer, subject)),
     held AS (SELECT p.server, p.issuer, p.subject, p.owner FROM leases p JOIN claim_keys USING (server, issuer, subject)),
     taken AS (
       INSERT INTO leases AS l (server, issuer, subject, owner, pid, host, acquired_at, expires_at)
       SELECT k.server, k.issuer, k.subject, $4, $5, $6, clock.now, clock.now + $7
       FROM clock, claim_keys k
       ON CONFLICT (server, issuer, subject) DO UPDATE SET owner = excluded.owner, pid = excluded.pid,
         host = excluded.host, expires_at = excluded.expires_at,
         acquired_at = CASE WHEN l.owner = excluded.owner THEN l.acquired_at ELSE excluded.acquired_at END
       WHERE l.owner = excluded.owner OR l.expires_at <= excluded.acquired_at
       RETURNING l.server, l.issuer, l.subject)
     SELECT t.server, t.issuer, t.subject, held.owner AS prior
     FROM taken t LEFT JOIN held USING (server, issuer, subject)`,
    [...cols, holder.owner, holder.pid, holder.host, Math.max(0, Math.round(claim.ttlMs))],
  );
  return new Map(rows.map((r) => [`${r.server}\u0000${r.issuer}\u0000${r.subject}`, r.prior]));
}

/**
 * A row sealed under another key cannot be refreshed by anyone holding this one. It leaves
 * the due index (a new login rewrites it) instead of failing every claim from now on; reads
 * of it keep reporting STORE_KEY_MISMATCH. A data key this instance has not loaded yet is a
 * rotation elsewhere, not a foreign row: rethrown, the transaction reloads the keys and runs
 * again (as on SQLite; the check at BEGIN makes this rare, the rotation lock rarer still).
 */
async function openable(
  conn: PgConnection,
  client: Queryable,
  row: CredentialRow,
): Promise<StoredCredential | undefined> {
  const decoded = decodeKey(row);
  try {
    return openCredential(conn.box, decoded);
  } catch (error) {
    if (error instanceof UnknownDataKeyError) throw error;
    await client.query(`UPDATE credentials SET due_at = NULL WHERE ${KEY_WHERE}`, keyValues(decoded));
    return undefined;
  }
}
