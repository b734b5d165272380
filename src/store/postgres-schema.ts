import type { Queryable } from './postgres-connection.js';

/**
 * Schema migrations for the Postgres store, applied in order in one transaction that holds
 * a transaction-scoped advisory lock, so N instances starting at once on a new database
 * migrate exactly once: the first takes the lock and migrates, the others wait on the lock
 * and then find nothing left to do. `schema_migrations` records each version applied.
 * Never edit a shipped migration; append a new one.
 *
 * Times are epoch milliseconds in BIGINT (read back as numbers by the store's type parser),
 * secrets are BYTEA sealed exactly as in SQLite, JSON columns are TEXT so both stores share
 * their row mapping.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  CREATE TABLE credentials (
    server     TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    generation BIGINT NOT NULL,
    secrets    BYTEA NOT NULL,
    record     TEXT NOT NULL,
    status     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    refresh_at BIGINT,            -- the due index (postgres-due.ts): from the tokens alone
    due_at     BIGINT,            -- refresh_at moved by the status; NULL: never due
    PRIMARY KEY (server, issuer, subject)
  );
  CREATE INDEX credentials_due ON credentials (due_at) WHERE due_at IS NOT NULL;
  -- a credential is looked up by (server, subject) on every cache miss of a manager
  CREATE INDEX credentials_by_subject ON credentials (server, subject, issuer);
  CREATE TABLE registrations (
    issuer        TEXT PRIMARY KEY,
    record        TEXT NOT NULL,
    client_secret BYTEA
  );
  CREATE TABLE discovery (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    document   TEXT NOT NULL,
    source_url TEXT NOT NULL,
    fetched_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
  );
  CREATE TABLE leases (
    server      TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    owner       TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (server, issuer, subject)
  );
  CREATE TABLE events (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    type       TEXT NOT NULL,
    server     TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    generation BIGINT,
    pid        INTEGER NOT NULL,
    detail     TEXT
  );
  CREATE INDEX events_by_server ON events (server, id);
  CREATE TABLE pending_revocations (
    id               TEXT PRIMARY KEY,
    server           TEXT NOT NULL,
    issuer           TEXT NOT NULL,
    subject          TEXT NOT NULL,
    token_type       TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    auth_method      TEXT NOT NULL,
    secrets          BYTEA NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT,
    claim_owner      TEXT,
    claim_expires_at BIGINT
  );
  CREATE INDEX pending_revocations_due ON pending_revocations (next_attempt_at);
  `,
  // 2: the key table (postgres-key-table.ts), so the data key can rotate. A store of schema 1
  // kept its one wrapped data key in meta (dek_id, dek_wrapped, wrapped by the KEK named by
  // key_fingerprint); it becomes the key table's first row and the active key, in the same
  // transaction as the schema change, so no instance ever sees one without the other.
  `
  CREATE TABLE data_keys (
    id         TEXT NOT NULL,
    kek_id     TEXT NOT NULL,
    wrapped    BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (id, kek_id)
  );
  INSERT INTO data_keys (id, kek_id, wrapped, created_at)
    SELECT d.value, f.value, decode(w.value, 'base64'), floor(extract(epoch from now()) * 1000)::bigint
    FROM meta d, meta w, meta f
    WHERE d.name = 'dek_id' AND w.name = 'dek_wrapped' AND f.name = 'key_fingerprint';
  INSERT INTO meta (name, value) SELECT 'active_data_key', value FROM meta WHERE name = 'dek_id';
  DELETE FROM meta WHERE name IN ('dek_id', 'dek_wrapped');
  `,
  // latchkey serve (docs/serve.md): app keys (a digest only) and pending connect attempts.
  `
  CREATE TABLE serve_app_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    created_at BIGINT NOT NULL
  );
  CREATE TABLE serve_connect_attempts (
    id           TEXT PRIMARY KEY,
    subject      TEXT NOT NULL,
    upstream     TEXT NOT NULL,
    server       TEXT NOT NULL,
    return_to    TEXT NOT NULL,
    verifier     BYTEA NOT NULL,
    issuer       TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    resource     TEXT,
    scope        TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
  );
  CREATE INDEX serve_connect_attempts_expiry ON serve_connect_attempts (expires_at);
  `,
  // The serve portal: single-use links and the browser sessions they become (digests only).
  `
  CREATE TABLE serve_portal_links (
    id         TEXT PRIMARY KEY,
    subject    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
  );
  CREATE INDEX serve_portal_links_expiry ON serve_portal_links (expires_at);
  CREATE TABLE serve_portal_sessions (
    id         TEXT PRIMARY KEY,
    subject    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
  );
  CREATE INDEX serve_portal_sessions_expiry ON serve_portal_sessions (expires_at);
  `,
  // DPoP (RFC 9449, docs/dpop.md): the store's proof key, its private JWK sealed like a token.
  `
  CREATE TABLE dpop_keys (
    alg         TEXT PRIMARY KEY,
    private_jwk BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
  );
  `,
  // serve app-key scopes (docs/serve.md, "One gateway, several applications"): a key may be
  // limited to subjects starting with a prefix. Null, as every existing row gets, is every subject.
  `
  ALTER TABLE serve_app_keys ADD COLUMN subject_prefix TEXT;
  `,
];

export const PG_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Advisory lock ids (arbitrary constants, "latchkey" in ASCII, plus a purpose). Distinct per
 * purpose so that the event-order lock never waits on a migration.
 */
export const MIGRATION_LOCK = 0x6c61_7463_6800_01n;
export const EVENT_ORDER_LOCK = 0x6c61_7463_6800_02n;
export const KEY_SETUP_LOCK = 0x6c61_7463_6800_03n;
/** Held shared by every write transaction, exclusively by a key rotation (PgKeyTracking). */
export const KEY_ROTATION_LOCK = 0x6c61_7463_6800_04n;

/**
 * Bring the schema to `upTo` (default PG_SCHEMA_VERSION); `client` must be inside a
 * transaction. A lower `upTo` builds a store as an older latchkey left it, for the tests of a
 * later migration.
 */
export async function migrate(client: Queryable, upTo: number = MIGRATIONS.length): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK.toString()]);
  await client.query(
    `CREATE TABLE IF NOT EXISTS schema_migrations (
       version    INTEGER PRIMARY KEY,
       applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
     )`,
  );
  const { rows } = await client.query<{ version: number | null }>(
    'SELECT max(version) AS version FROM schema_migrations',
  );
  const current = Number(rows[0]?.version ?? 0);
  if (current > MIGRATIONS.length) {
    throw new Error(
      `the store was written by a newer latchkey (schema ${current}, this one knows ${MIGRATIONS.length}); upgrade latchkey`,
    );
  }
  for (let version = current + 1; version <= Math.min(upTo, MIGRATIONS.length); version++) {
    await client.query(MIGRATIONS[version - 1] ?? '');
    await client.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
  }
}
