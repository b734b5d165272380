// Envelope encryption and online rekey on the PostgreSQL store, on a real server
// (test/support/postgres.ts): the online rekey contract (envelope-contract.ts) and what only a
// shared database has, with store objects standing for instances and child processes for other
// machines.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

import pg from 'pg';

import type { CredentialStore } from '../../src/store/contract.js';
import { keyFingerprint } from '../../src/store/crypto.js';
import { localKeyProvider, sealedBy } from '../../src/store/envelope.js';
import { openPostgresStore, type PostgresStoreOptions } from '../../src/store/postgres.js';
import { KEY_ROTATION_LOCK, PG_SCHEMA_VERSION } from '../../src/store/postgres-schema.js';
import { keyRotationStatus, rekeyStore } from '../../src/store/rekey.js';
import { adminQuery, freshDatabase } from '../support/postgres.js';
import { latchkeyError, sleep } from './contract.js';
import { type EnvelopeData, type Inspection, rekeyContract } from './envelope-contract.js';
import {
  AesKeyWrapProvider,
  assertReadable,
  envOf,
  newKey,
  writeEveryKind,
  writeMany,
} from './envelope-support.js';

const MAIN_LAYOUT = fileURLToPath(new URL('../fixtures/pg-main-layout-store.sql', import.meta.url));

interface Db extends EnvelopeData {
  url: string;
  /** Another instance of the store (its own pool and LISTEN connection), closed when the test ends. */
  open(options?: Partial<PostgresStoreOptions>): Promise<CredentialStore>;
}

async function database(t: TestContext, env: NodeJS.ProcessEnv = envOf(newKey())): Promise<Db> {
  const db = await freshDatabase();
  const opened: CredentialStore[] = [];
  t.after(async () => {
    for (const store of opened) await store.close();
    await db.drop();
  });
  return {
    url: db.url,
    env,
    open: async (options = {}) => {
      const store = await openPostgresStore({ url: db.url, env, ...options });
      opened.push(store);
      return store;
    },
    inspect: () => inspect(db.url),
    async sealedValue(server) {
      const found = await adminQuery(db.url, 'SELECT secrets FROM credentials WHERE server = $1', [server]);
      return (found.rows[0] as { secrets: Buffer }).secrets;
    },
    async damage(server) {
      await adminQuery(
        db.url,
        `UPDATE credentials SET secrets = set_byte(secrets, length(secrets) - 1,
           get_byte(secrets, length(secrets) - 1) # 1) WHERE server = $1`,
        [server],
      );
    },
    location: { LATCHKEY_STORE: db.url },
  };
}

rekeyContract('postgres', (t) => database(t));

async function inspect(url: string): Promise<Inspection> {
  const values = (
    await adminQuery(
      url,
      `SELECT secrets AS v FROM credentials UNION ALL
       SELECT client_secret FROM registrations WHERE client_secret IS NOT NULL UNION ALL
       SELECT secrets FROM pending_revocations`,
    )
  ).rows.map((r: { v: Buffer }) => r.v);
  const keys = (await adminQuery(url, 'SELECT id, kek_id, wrapped FROM data_keys'))
    .rows as Inspection['keys'];
  const active = (await adminQuery(url, `SELECT value FROM meta WHERE name = 'active_data_key'`)).rows as {
    value: string;
  }[];
  return {
    sealedBy: new Set(values.map((v) => sealedBy(v))),
    keys,
    active: active[0]?.value ?? '',
    count: values.length,
  };
}

/** Every row of every table of the database, as text (bytea shows as \x and hex). */
async function dumpAll(url: string): Promise<string> {
  const tables = (
    await adminQuery(url, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
  ).rows.map((r: { table_name: string }) => r.table_name);
  let text = '';
  for (const table of tables) {
    const rows = await adminQuery(url, `SELECT t::text AS row FROM "${table}" t`);
    text += rows.rows.map((r: { row: string }) => r.row).join('\n');
  }
  return text;
}

describe('envelope encryption (postgres store): sealing and rotation', () => {
  it('seals every secret under a wrapped data key; no key or secret is in any table in clear', async (t) => {
    const kek = newKey();
    const db = await database(t, envOf(kek));
    const store = await db.open();
    const { records, clientSecret, queued } = await writeEveryKind(store);
    const first = await db.inspect();
    await rekeyStore(store, { pauseMs: 0, batchSize: 2 }); // a second data key has existed too

    const after = await db.inspect();
    assert.equal(after.count, 5);
    assert.deepEqual([...after.sealedBy], [after.active], 'every value names the active data key');
    assert.equal(after.keys.length, 1);
    assert.equal(after.keys[0]?.kek_id, keyFingerprint(kek));
    const provider = localKeyProvider(kek);
    const deks = [
      await provider.unwrap(first.keys[0]!.wrapped),
      await provider.unwrap(after.keys[0]!.wrapped),
    ];

    const dump = (await dumpAll(db.url)).toLowerCase();
    const forms = (b: Buffer): string[] => [b.toString('hex'), b.toString('base64'), b.toString('base64url')];
    const secrets = [
      clientSecret,
      queued.secrets.token,
      ...records.flatMap((r) => [
        r.secrets.accessToken,
        r.secrets.refreshToken ?? '',
        r.secrets.idToken ?? '',
      ]),
    ];
    const needles = [
      ...[kek, ...deks].flatMap(forms),
      ...secrets.flatMap((s) => [s, Buffer.from(s).toString('hex')]),
    ];
    for (const needle of needles) {
      assert.equal(dump.indexOf(needle.toLowerCase()), -1, 'key material or a secret in a table');
    }
  });

  it('an instance that has not seen a rotation still claims due rows sealed under the new key', async (t) => {
    const db = await database(t);
    const rotating = await db.open();
    const refresher = await db.open(); // opened before the rotation: holds only the old key
    const records = await writeMany(rotating, 4);
    await rekeyStore(rotating, { pauseMs: 0 });
    assert.equal((await db.inspect()).sealedBy.size, 1, 'every row is sealed under the new key only');

    // The claim's transaction checks the active data key first and loads the new one, so the
    // rows are not taken for foreign ones and dropped from the due index.
    const holder = { owner: 'refresher:1:a', pid: 1, host: 'refresher' };
    const claimed = await refresher.claimDueCredentials({
      holder,
      ttlMs: 60_000,
      limit: 10,
      now: Date.now() + 10 * 3_600_000,
    });
    assert.deepEqual(claimed.map((c) => c.key.server).sort(), records.map((r) => r.key.server).sort());
    assert.deepEqual(
      claimed.map((c) => c.secrets).sort((a, b) => a.accessToken.localeCompare(b.accessToken)),
      records.map((r) => r.secrets).sort((a, b) => a.accessToken.localeCompare(b.accessToken)),
    );
    const undue = await adminQuery(db.url, 'SELECT count(*)::int AS n FROM credentials WHERE due_at IS NULL');
    assert.equal((undue.rows[0] as { n: number }).n, 0, 'no row left the due index');
  });

  it('a rotation waits for the write transactions in flight before it makes a new key active', async (t) => {
    const db = await database(t);
    const store = await db.open();
    const records = await writeMany(store, 3);
    const oldKey = (await db.inspect()).active;
    // A write in flight, as every write transaction begins (postgres-connection.ts): it holds
    // the rotation lock shared until it commits, having read the old key as the active one.
    const inFlight = new pg.Client({ connectionString: db.url });
    inFlight.on('error', () => undefined); // dropping the database at the end cuts it off
    await inFlight.connect();
    await inFlight.query(`BEGIN; SELECT pg_advisory_xact_lock_shared(${KEY_ROTATION_LOCK})`);

    const rotation = rekeyStore(store, { pauseMs: 0 });
    let waiting = false;
    for (let tries = 0; !waiting && tries < 250; tries++) {
      const blocked = await adminQuery(
        db.url,
        `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`,
      );
      waiting = (blocked.rowCount ?? 0) > 0;
      if (!waiting) await sleep(20);
    }
    assert.ok(waiting, 'the rotation waits on the lock');
    assert.equal((await db.inspect()).active, oldKey, 'no new key is active while the write is open');
    await inFlight.query('COMMIT');
    await inFlight.end();
    const result = await rotation;
    assert.notEqual(result.dataKey, oldKey);
    assert.deepEqual(result.dropped, [oldKey]);
    await assertReadable(store, records);
  });
});

describe('envelope encryption (postgres store): key-encryption keys', () => {
  it('a wrong key-encryption key is STORE_KEY_MISMATCH and loses nothing, before and after a KEK change', async (t) => {
    const first = newKey();
    const second = newKey();
    const db = await database(t, envOf(first));
    const store = await db.open();
    const records = await writeMany(store, 5);
    const untouched = await dumpAll(db.url);

    await assert.rejects(db.open({ env: envOf(second) }), latchkeyError('STORE_KEY_MISMATCH'));
    assert.equal(await dumpAll(db.url), untouched, 'a wrong key changes nothing in the database');
    await assertReadable(store, records);

    // Step 1: the new KEK is added; the old one keeps working for instances not restarted yet.
    const result = await rekeyStore(store, {
      newKek: { provider: localKeyProvider(second), source: 'env' },
      pauseMs: 0,
    });
    assert.equal(result.kek, keyFingerprint(second));
    const stillOld = await db.open({ env: envOf(first) });
    await assertReadable(stillOld, records);
    assert.equal((await keyRotationStatus(store)).keyEncryptionKeys.length, 2, 'a KEK change is unfinished');
    // Step 2, run with the new KEK once every instance has it: the old KEK's copies go.
    const withSecond = await db.open({ env: envOf(second) });
    await rekeyStore(withSecond, { resume: true, pauseMs: 0 });
    assert.deepEqual(
      new Set((await db.inspect()).keys.map((k) => k.kek_id)),
      new Set([keyFingerprint(second)]),
    );
    await assertReadable(store, records); // the instances already running go on
    await assertReadable(stillOld, records);
    await assert.rejects(db.open({ env: envOf(first) }), latchkeyError('STORE_KEY_MISMATCH'));
    await assertReadable(await db.open({ env: envOf(second) }), records);
  });

  it('takes a KeyProvider of the caller, calls it per data key (not per token), and rekeys to another', async (t) => {
    const db = await database(t, {});
    const kms = new AesKeyWrapProvider('pg-one');
    const store = await db.open({ keyProvider: kms });
    assert.equal(store.security.keySource, 'provider');
    const records = await writeMany(store, 10);
    assert.equal((await db.inspect()).keys[0]?.kek_id, kms.id);

    await assert.rejects(
      db.open({ keyProvider: new AesKeyWrapProvider('pg-one-again') }),
      latchkeyError('STORE_KEY_MISMATCH'),
    );
    await assert.rejects(db.open({ env: envOf(newKey()) }), latchkeyError('STORE_KEY_MISMATCH'));
    await assert.rejects(db.open(), latchkeyError('STORE_KEY_MISMATCH')); // no provider given at all

    const unwrapsBefore = kms.unwraps;
    const reader = await db.open({ keyProvider: kms });
    await assertReadable(reader, records);
    await assertReadable(reader, records);
    assert.equal(kms.unwraps - unwrapsBefore, 1, 'one unwrap when the store opened, none per read');

    const next = new AesKeyWrapProvider('pg-two');
    await rekeyStore(store, { newKek: { provider: next, source: 'provider' }, pauseMs: 0 });
    await assertReadable(reader, records); // opened under the old KEK, still reading the new data key
    const withNext = await db.open({ keyProvider: next });
    await rekeyStore(withNext, { resume: true, pauseMs: 0 });
    assert.deepEqual(new Set((await db.inspect()).keys.map((k) => k.kek_id)), new Set([next.id]));
    await assertReadable(reader, records);
    await assert.rejects(db.open({ keyProvider: kms }), latchkeyError('STORE_KEY_MISMATCH'));
    await assertReadable(withNext, records);
  });

  it('opens a store made before the key table (one wrapped key in meta), and rekeys it', async (t) => {
    const legacyKey = Buffer.alloc(32, 0x2a); // the LATCHKEY_KEY the fixture was written with
    const db = await database(t, envOf(legacyKey));
    await adminQuery(db.url, readFileSync(MAIN_LAYOUT, 'utf8'));
    const versions = async (): Promise<number[]> =>
      (await adminQuery(db.url, 'SELECT version FROM schema_migrations ORDER BY version')).rows.map(
        (r: { version: number }) => r.version,
      );
    assert.deepEqual(await versions(), [1]);
    const untouched = await dumpAll(db.url);
    const meta = (await adminQuery(db.url, `SELECT value FROM meta WHERE name = 'dek_id'`)).rows as {
      value: string;
    }[];
    const oldDek = meta[0]!.value;

    // A wrong key is refused, and the migration that ran in the same transaction is undone.
    await assert.rejects(db.open({ env: envOf(newKey()) }), latchkeyError('STORE_KEY_MISMATCH'));
    assert.deepEqual(await versions(), [1]);
    assert.equal(await dumpAll(db.url), untouched, 'nothing changed');

    const store = await db.open();
    // Every migration, up to the newest (not a literal list: a new migration is not this test's concern).
    assert.deepEqual(
      await versions(),
      Array.from({ length: PG_SCHEMA_VERSION }, (_, i) => i + 1),
    );
    const key = {
      server: 'https://main-layout.example.com/mcp',
      issuer: 'https://as.example.com',
      subject: 'alice',
    };
    const secrets = {
      accessToken: 'pg-main-access-token-3b7e19d2',
      refreshToken: 'pg-main-refresh-token-8c41f0a6',
    };
    assert.deepEqual((await store.getCredential(key))?.secrets, secrets);
    assert.equal((await store.getRegistration(key.issuer))?.clientSecret, 'pg-main-client-secret-5d9a');
    const tables = await db.inspect();
    assert.equal(tables.active, oldDek, 'the key in meta became the active row of data_keys');
    assert.deepEqual(
      tables.keys.map((k) => [k.id, k.kek_id]),
      [[oldDek, keyFingerprint(legacyKey)]],
    );
    const leftover = await adminQuery(
      db.url,
      `SELECT name FROM meta WHERE name IN ('dek_id', 'dek_wrapped')`,
    );
    assert.equal(leftover.rowCount, 0, 'the old meta rows are gone');

    const result = await rekeyStore(store, { pauseMs: 0 });
    assert.equal(result.resealed, 3);
    assert.deepEqual(result.dropped, [oldDek]);
    const fresh = await db.open();
    assert.deepEqual((await fresh.getCredential(key))?.secrets, secrets);
    assert.equal((await fresh.getRegistration(key.issuer))?.clientSecret, 'pg-main-client-secret-5d9a');
    const [claimed] = await fresh.claimPendingRevocations({
      owner: 't',
      ttlMs: 1000,
      now: 1_900_000_000_000,
    });
    assert.equal(claimed?.secrets.token, 'pg-main-revoked-token-e7c2a4b9');
  });
});
