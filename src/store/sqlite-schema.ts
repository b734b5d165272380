import type BetterSqlite3 from 'better-sqlite3';

/**
 * Schema migrations, applied in order inside one IMMEDIATE transaction so two processes
 * opening a new store at once cannot both migrate. `PRAGMA user_version` records how many
 * have run. Never edit a shipped migration; append a new one.
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
    generation INTEGER NOT NULL,
    secrets    BLOB NOT NULL,     -- AES-256-GCM sealed TokenSecrets JSON
    record     TEXT NOT NULL,     -- non-secret CredentialRecord fields, JSON
    status     TEXT NOT NULL,     -- CredentialStatus JSON
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (server, issuer, subject)
  );
  CREATE TABLE registrations (
    issuer        TEXT PRIMARY KEY,
    record        TEXT NOT NULL,  -- Registration without clientSecret, JSON
    client_secret BLOB            -- sealed, when the client has one
  );
  CREATE TABLE discovery (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    document   TEXT NOT NULL,
    source_url TEXT NOT NULL,
    fetched_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
  );
  CREATE TABLE leases (
    server      TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    owner       TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (server, issuer, subject)
  );
  CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    type       TEXT NOT NULL,
    server     TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    generation INTEGER,
    pid        INTEGER NOT NULL,
    detail     TEXT
  );
  CREATE INDEX events_by_server ON events (server, id);
  `,
  // 2: revocations that failed at logout, retried by later runs (docs/security.md).
  `
  CREATE TABLE pending_revocations (
    id               TEXT PRIMARY KEY,
    server           TEXT NOT NULL,
    issuer           TEXT NOT NULL,
    subject          TEXT NOT NULL,
    token_type       TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    auth_method      TEXT NOT NULL,
    secrets          BLOB NOT NULL,  -- AES-256-GCM sealed RevocationSecrets JSON, bound to the row
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    claim_owner      TEXT,
    claim_expires_at INTEGER
  );
  CREATE INDEX pending_revocations_due ON pending_revocations (next_attempt_at);
  `,
  // 3: the due index (docs/refresher.md). refresh_at comes from the tokens alone, due_at from
  // refresh_at and the status; NULL means never due. Rows written before this migration are
  // filled in by backfillDueIndex (sqlite-due.ts) once the data key is at hand, because
  // whether a row has a refresh token is sealed with its secrets.
  `
  ALTER TABLE credentials ADD COLUMN refresh_at INTEGER;
  ALTER TABLE credentials ADD COLUMN due_at INTEGER;
  CREATE INDEX credentials_due ON credentials (due_at) WHERE due_at IS NOT NULL;
  INSERT INTO meta (name, value) SELECT 'due_backfill', 'pending' WHERE EXISTS (SELECT 1 FROM credentials);
  `,
  // 4: envelope encryption. Each data key (DEK) once per key-encryption key that wraps it;
  // the active DEK's id is meta 'active_data_key' (docs/security.md).
  `
  CREATE TABLE data_keys (
    id         TEXT NOT NULL,     -- 16 hex characters, also in every value the DEK sealed
    kek_id     TEXT NOT NULL,     -- KeyProvider id (a local key's fingerprint)
    wrapped    BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (id, kek_id)
  );
  `,
  // 5: a credential is looked up by (server, subject) on every cache miss; the primary key
  // leads with issuer after server, so without this index a gateway with one server and
  // 100k subjects scanned every row of that server per lookup (issue 16).
  `
  CREATE INDEX credentials_by_subject ON credentials (server, subject, issuer);
  `,
  // 6: latchkey serve (docs/serve.md): app keys (a digest only, never the key) and the
  // pending connect attempts of its web login, whose PKCE verifier is sealed.
  `
  CREATE TABLE serve_app_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    digest     TEXT NOT NULL,   -- hex SHA-256 of the whole key
    created_at INTEGER NOT NULL
  );
  CREATE TABLE serve_connect_attempts (
    id           TEXT PRIMARY KEY,  -- hex SHA-256 of the OAuth state
    subject      TEXT NOT NULL,
    upstream     TEXT NOT NULL,
    server       TEXT NOT NULL,
    return_to    TEXT NOT NULL,
    verifier     BLOB NOT NULL,     -- sealed PKCE verifier
    issuer       TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    resource     TEXT,
    scope        TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
  );
  CREATE INDEX serve_connect_attempts_expiry ON serve_connect_attempts (expires_at);
  `,
  // 7: the serve portal (docs/serve.md, "The portal"): single-use links an app asks for and
  // the browser sessions they become. Ids are SHA-256 digests of what the browser holds.
  `
  CREATE TABLE serve_portal_links (
    id         TEXT PRIMARY KEY,
    subject    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX serve_portal_links_expiry ON serve_portal_links (expires_at);
  CREATE TABLE serve_portal_sessions (
    id         TEXT PRIMARY KEY,
    subject    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX serve_portal_sessions_expiry ON serve_portal_sessions (expires_at);
  `,
  // DPoP (RFC 9449, docs/dpop.md): the store's proof key, its private JWK sealed like a token.
  `
  CREATE TABLE dpop_keys (
    alg         TEXT PRIMARY KEY,
    private_jwk BLOB NOT NULL,
    created_at  INTEGER NOT NULL
  );
  `,
  // serve app-key scopes (docs/serve.md, "One gateway, several applications"): a key may be
  // limited to subjects starting with a prefix. Null, as every existing row gets, is every subject.
  `
  ALTER TABLE serve_app_keys ADD COLUMN subject_prefix TEXT;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Bring the schema to `upTo` (default: SCHEMA_VERSION). A lower `upTo` builds a store as an
 * older latchkey left it, for the tests of a later migration.
 */
export function migrate(db: BetterSqlite3.Database, upTo: number = MIGRATIONS.length): void {
  db.transaction(() => {
    const current = db.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new Error(
        `the store was written by a newer latchkey (schema ${current}, this one knows ${MIGRATIONS.length}); upgrade latchkey`,
      );
    }
    const target = Math.min(upTo, MIGRATIONS.length);
    if (current >= target) return;
    for (const sql of MIGRATIONS.slice(current, target)) db.exec(sql);
    db.pragma(`user_version = ${target}`);
  }).immediate();
}
