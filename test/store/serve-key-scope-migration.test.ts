// The app-key scope migration (docs/serve.md, "One gateway, several applications") on a
// store written before it: the schema is built by the migrations before it, on real SQLite
// and real PostgreSQL, with an app key stored in the old row shape. Opened by this latchkey,
// the store gains the column and the old key still verifies, as a key for every subject.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import Database from 'better-sqlite3';
import pg from 'pg';

import { createAppKey, verifyAppKey } from '../../src/serve/app-keys.js';
import { inScope, scopeText } from '../../src/serve/scopes.js';
import { migrate as migratePostgres, PG_SCHEMA_VERSION } from '../../src/store/postgres-schema.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { hasServeTables, type ServeStore } from '../../src/store/serve-contract.js';
import { migrate as migrateSqlite, SCHEMA_VERSION } from '../../src/store/sqlite-schema.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { freshDatabase } from '../support/postgres.js';

/** A key as `serve keys create` made them before scopes: the key, and its row in the old columns. */
function oldKey() {
  const id = randomBytes(6).toString('hex');
  const key = `lk_${id}_${randomBytes(32).toString('base64url')}`;
  const row = {
    id,
    name: 'portal from before',
    digest: createHash('sha256').update(key, 'utf8').digest('hex'),
    created_at: 1_700_000_000_000,
  };
  return { key, row };
}

/** The old key verifies as unscoped, and the store now takes scoped keys too. */
async function checkOpened(store: ServeStore, key: string, row: ReturnType<typeof oldKey>['row']) {
  const record = await verifyAppKey(store, key);
  assert.deepEqual(record, { id: row.id, name: row.name, digest: row.digest, createdAt: row.created_at });
  assert.ok(!('subjectPrefix' in record), 'no prefix: every subject');
  assert.equal(scopeText(record), 'all subjects');
  assert.ok(
    inScope(record.subjectPrefix, 'owui:1') &&
      inScope(record.subjectPrefix, 'lc:1') &&
      inScope(record.subjectPrefix, '1'),
  );
  const scoped = await createAppKey(store, 'open webui', { subjectPrefix: 'owui:' });
  assert.equal((await verifyAppKey(store, scoped.key))?.subjectPrefix, 'owui:');
}

describe('serve app-key scopes: a store written before the migration', () => {
  it('SQLite: the old key verifies as a key for every subject', async (t) => {
    const home = await mkdtemp(join(tmpdir(), 'latchkey-scope-migration-'));
    t.after(() => rm(home, { recursive: true, force: true }));
    const { key, row } = oldKey();
    const db = new Database(join(home, 'latchkey.db'));
    try {
      migrateSqlite(db, SCHEMA_VERSION - 1);
      const columns = (db.pragma('table_info(serve_app_keys)') as { name: string }[]).map((c) => c.name);
      assert.deepEqual(columns, ['id', 'name', 'digest', 'created_at'], 'the schema before the migration');
      db.prepare('INSERT INTO serve_app_keys (id, name, digest, created_at) VALUES (?, ?, ?, ?)').run(
        row.id,
        row.name,
        row.digest,
        row.created_at,
      );
    } finally {
      db.close();
    }
    const store = await openSqliteStore({ home, env: { LATCHKEY_KEY: randomBytes(32).toString('base64') } });
    try {
      assert.ok(hasServeTables(store));
      await checkOpened(store, key, row);
    } finally {
      await store.close();
    }
  });

  it('PostgreSQL: the old key verifies as a key for every subject', async (t) => {
    const database = await freshDatabase();
    t.after(() => database.drop());
    const { key, row } = oldKey();
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await client.query('BEGIN');
      await migratePostgres(client, PG_SCHEMA_VERSION - 1);
      await client.query('COMMIT');
      const { rows } = await client.query<{ column_name: string }>(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'serve_app_keys' ORDER BY ordinal_position",
      );
      assert.deepEqual(
        rows.map((r) => r.column_name),
        ['id', 'name', 'digest', 'created_at'],
        'the schema before the migration',
      );
      await client.query(
        'INSERT INTO serve_app_keys (id, name, digest, created_at) VALUES ($1, $2, $3, $4)',
        [row.id, row.name, row.digest, row.created_at],
      );
    } finally {
      await client.end();
    }
    const env = { LATCHKEY_KEY: randomBytes(32).toString('base64') };
    const store = await openPostgresStore({ url: database.url, env });
    try {
      assert.ok(hasServeTables(store));
      await checkOpened(store, key, row);
    } finally {
      await store.close();
    }
  });
});
