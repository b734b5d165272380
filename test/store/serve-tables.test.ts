// The serve tables (app keys, connect attempts) on both stores that have them: one suite,
// run against real SQLite and real PostgreSQL.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { type ConnectAttempt, hasServeTables } from '../../src/store/serve-contract.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { adminQuery } from '../support/postgres.js';
import { type OpenInstances, SERVE_STORES, type ServeInstances } from './serve-instances.js';

/** Every byte the store keeps, for "no secret in plaintext" checks. */
async function rawDump(opened: ServeInstances): Promise<string> {
  if (opened.kind === 'sqlite') {
    const files = ['latchkey.db', 'latchkey.db-wal'];
    const parts = await Promise.all(
      files.map((f) => readFile(join(opened.home, f)).catch(() => Buffer.alloc(0))),
    );
    return Buffer.concat(parts).toString('latin1');
  }
  const keys = await adminQuery(opened.url, 'SELECT * FROM serve_app_keys');
  const attempts = await adminQuery(
    opened.url,
    "SELECT *, encode(verifier, 'escape') AS raw FROM serve_connect_attempts",
  );
  return JSON.stringify([keys.rows, attempts.rows]);
}

function attempt(overrides: Partial<ConnectAttempt> = {}): ConnectAttempt {
  const now = Date.now();
  return {
    id: randomBytes(32).toString('hex'),
    subject: 'alice',
    upstream: 'notion',
    server: 'https://mcp.example.com/mcp',
    returnTo: 'https://app.example.com/back?x=1',
    verifier: `verifier-${randomBytes(32).toString('base64url')}`,
    issuer: 'https://as.example.com',
    clientId: 'client-1',
    redirectUri: 'https://gw.example.com/oauth/callback',
    resource: 'https://mcp.example.com/mcp',
    scope: 'mcp:tools',
    createdAt: now,
    expiresAt: now + 600_000,
    ...overrides,
  };
}

function serveTablesContract(name: string, open: OpenInstances): void {
  describe(`serve tables: ${name}`, () => {
    it('app keys: add, get, list, delete; a duplicate id is refused', async (t) => {
      const { store, other } = await open(t);
      const record = {
        id: 'a1b2c3d4e5f6',
        name: 'portal',
        digest: 'ab'.repeat(32),
        createdAt: 1_700_000_000_000,
      };
      await store.addAppKey(record);
      assert.deepEqual(await other.getAppKey('a1b2c3d4e5f6'), record, 'another instance reads it');
      assert.equal(await store.getAppKey('ffffffffffff'), undefined);
      await assert.rejects(store.addAppKey({ ...record, name: 'other' }));
      await store.addAppKey({ ...record, id: '000000000001', createdAt: record.createdAt + 1 });
      assert.deepEqual(
        (await store.listAppKeys()).map((k) => k.id),
        ['a1b2c3d4e5f6', '000000000001'],
      );
      assert.equal(await other.deleteAppKey('a1b2c3d4e5f6'), true);
      assert.equal(await store.getAppKey('a1b2c3d4e5f6'), undefined, 'deleted for every instance');
      assert.equal(await store.deleteAppKey('a1b2c3d4e5f6'), false);
    });

    it('app keys: a subject prefix round-trips; a key without one comes back without it', async (t) => {
      const { store, other } = await open(t);
      const scoped = {
        id: '0000000000a1',
        name: 'open webui',
        digest: 'cd'.repeat(32),
        createdAt: 1_700_000_000_000,
        subjectPrefix: 'owui:',
      };
      const plain = {
        id: '0000000000a2',
        name: 'ops',
        digest: 'ef'.repeat(32),
        createdAt: 1_700_000_000_001,
      };
      await store.addAppKey(scoped);
      await store.addAppKey(plain);
      assert.deepEqual(await other.getAppKey(scoped.id), scoped);
      const read = await other.getAppKey(plain.id);
      assert.deepEqual(read, plain);
      assert.ok(read !== undefined && !('subjectPrefix' in read), 'absent, not null or undefined');
      assert.deepEqual(await other.listAppKeys(), [scoped, plain]);
    });

    it('a connect attempt round-trips, and is taken once only, by any instance', async (t) => {
      const { store, other } = await open(t);
      const a = attempt();
      await store.addConnectAttempt(a);
      assert.deepEqual(await other.takeConnectAttempt(a.id), a, 'the other instance completes it');
      assert.equal(await store.takeConnectAttempt(a.id), undefined, 'single use');
      assert.equal(await other.takeConnectAttempt(a.id), undefined);
    });

    it('of concurrent takes of one attempt, exactly one succeeds', async (t) => {
      const { store, other } = await open(t);
      // Without the optional fields, which must come back absent (not null, not undefined).
      const { resource: _resource, scope: _scope, ...a } = attempt();
      await store.addConnectAttempt(a);
      const results = await Promise.all([
        store.takeConnectAttempt(a.id),
        other.takeConnectAttempt(a.id),
        store.takeConnectAttempt(a.id),
        other.takeConnectAttempt(a.id),
      ]);
      const won = results.filter((r) => r !== undefined);
      assert.equal(won.length, 1);
      assert.deepEqual(won[0], a, 'optional fields stay absent');
    });

    it('an expired attempt is not returned, and is deleted', async (t) => {
      const { store } = await open(t);
      const now = Date.now();
      const old = attempt({ createdAt: now - 700_000, expiresAt: now - 100_000 });
      await store.addConnectAttempt(old);
      assert.equal(await store.takeConnectAttempt(old.id), undefined);
      const live = attempt();
      await store.addConnectAttempt(live);
      // Judged at a given time too: at its expiry an attempt is gone.
      assert.equal(await store.takeConnectAttempt(live.id, live.expiresAt), undefined);
      const another = attempt();
      await store.addConnectAttempt(another);
      const stale = attempt({ expiresAt: now - 1 });
      await store.addConnectAttempt(stale);
      await store.takeConnectAttempt(another.id);
      assert.equal(await store.takeConnectAttempt(stale.id, 0), undefined, 'swept by the earlier take');
    });

    it('the PKCE verifier is sealed: it appears nowhere in the stored bytes', async (t) => {
      const opened = await open(t);
      const a = attempt();
      await opened.store.addConnectAttempt(a);
      const raw = await rawDump(opened);
      assert.ok(raw.includes(a.id), 'the dump does hold the row');
      assert.ok(!raw.includes(a.verifier), 'but not the verifier');
    });
  });
}

for (const { name, open } of SERVE_STORES) serveTablesContract(name, open);

describe('serve tables: the memory store', () => {
  it('does not have them (serve needs a store other instances share)', () => {
    assert.equal(hasServeTables(createMemoryStore()), false);
  });
});
