// The Postgres store on a real PostgreSQL server (test/support/postgres.ts): the shared store
// contract, then what only a network store shared by several instances has to get right.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it, type TestContext } from 'node:test';

import pg from 'pg';

import type { CredentialStore, LifecycleEvent } from '../../src/store/contract.js';
import { openPostgresStore, type PostgresStoreOptions } from '../../src/store/postgres.js';
import { PG_SCHEMA_VERSION } from '../../src/store/postgres-schema.js';
import { adminQuery, freshDatabase, startCluster, type TestDatabase } from '../support/postgres.js';
import {
  credentialKey,
  credentialRecord,
  eventFor,
  eventually,
  latchkeyError,
  secret,
  sleep,
  storeContract,
} from './contract.js';

function newKey(): string {
  return randomBytes(32).toString('base64');
}

storeContract('postgres', async () => {
  const db = await freshDatabase();
  const env = { LATCHKEY_KEY: newKey() };
  const opened: CredentialStore[] = [];
  const open = async (): Promise<CredentialStore> => {
    const store = await openPostgresStore({ url: db.url, env });
    opened.push(store);
    return store;
  };
  return {
    store: await open(),
    reopen: open,
    cleanup: async () => {
      for (const store of opened) await store.close();
      await db.drop();
    },
  };
});

/** A fresh database for one test, dropped (with every store on it closed) when it ends. */
async function database(
  t: TestContext,
): Promise<TestDatabase & { open: (o?: Partial<PostgresStoreOptions>) => Promise<CredentialStore> }> {
  const db = await freshDatabase();
  const env = { LATCHKEY_KEY: newKey() };
  const opened: CredentialStore[] = [];
  t.after(async () => {
    for (const store of opened) await store.close();
    await db.drop();
  });
  return {
    ...db,
    open: async (options = {}) => {
      const store = await openPostgresStore({ url: db.url, env, ...options });
      opened.push(store);
      return store;
    },
  };
}

const holder = (name: string) => ({ owner: `${name}:1:x`, pid: 1, host: name });

describe('postgres store', () => {
  it('two store objects on one database are two instances sharing credentials and leases', async (t) => {
    const db = await database(t);
    const a = await db.open();
    const b = await db.open();
    const key = credentialKey(1);
    const record = credentialRecord(key);
    assert.deepEqual(await a.writeCredential(record, { expectedGeneration: 0 }, eventFor(key)), {
      ok: true,
      generation: 1,
    });
    assert.deepEqual((await b.getCredential(key))?.secrets, record.secrets, 'b reads what a wrote');
    assert.ok(await a.acquireLease(key, holder('a'), 60_000));
    assert.equal(await b.acquireLease(key, holder('b'), 60_000), undefined, 'a holds the lease');
    const lost = await b.writeCredential(
      credentialRecord(key),
      { expectedGeneration: 1, leaseOwner: holder('b').owner },
      eventFor(key, 'refreshed'),
    );
    assert.deepEqual(lost, { ok: false, reason: 'lease-lost', currentGeneration: 1 });
  });

  it('many instances racing for one lease: exactly one wins', async (t) => {
    const db = await database(t);
    const stores = await Promise.all(Array.from({ length: 4 }, () => db.open()));
    const key = credentialKey('race');
    for (let round = 0; round < 5; round++) {
      const results = await Promise.all(
        stores.flatMap((store, i) =>
          [0, 1].map((j) => store.acquireLease(key, holder(`h${round}-${i}-${j}`), 60_000)),
        ),
      );
      assert.equal(results.filter((r) => r !== undefined).length, 1, `round ${round}: one winner`);
      const winner = results.find((r) => r !== undefined)!;
      await stores[0]!.releaseLease(key, winner.owner);
    }
  });

  it('many instances racing a compare-and-set write: exactly one wins per generation', async (t) => {
    const db = await database(t);
    const stores = await Promise.all(Array.from({ length: 4 }, () => db.open()));
    const key = credentialKey('cas');
    const creates = await Promise.all(
      stores.map((store) =>
        store.writeCredential(credentialRecord(key), { expectedGeneration: 0 }, eventFor(key)),
      ),
    );
    assert.equal(creates.filter((r) => r.ok).length, 1, 'one create');
    const updates = await Promise.all(
      stores.map((store) =>
        store.writeCredential(credentialRecord(key), { expectedGeneration: 1 }, eventFor(key, 'refreshed')),
      ),
    );
    assert.equal(updates.filter((r) => r.ok).length, 1, 'one update of generation 1');
    assert.equal((await stores[0]!.getCredential(key))?.generation, 2);
  });

  it('leases are timed by the database clock, not the caller', async (t) => {
    const db = await database(t);
    const store = await db.open();
    const [{ now }] = (
      await adminQuery(db.url, `SELECT floor(extract(epoch from clock_timestamp()) * 1000)::float8 AS now`)
    ).rows as [{ now: number }];
    const lease = await store.acquireLease(credentialKey(1), holder('a'), 10_000);
    assert.ok(lease !== undefined);
    assert.ok(Math.abs(lease.acquiredAt - now) < 1000, 'acquiredAt is the database time');
    // Push the lease into the past on the database's terms: it is then free, whatever our clock says.
    await adminQuery(db.url, `UPDATE leases SET expires_at = expires_at - 20000`);
    assert.equal(await store.getLease(credentialKey(1)), undefined);
    assert.ok(await store.acquireLease(credentialKey(1), holder('b'), 10_000));
  });

  it('watch delivers another instance’s write in well under a second (LISTEN/NOTIFY)', async (t) => {
    const db = await database(t);
    const writer = await db.open();
    const watcher = await db.open({ watchSafetyPollMs: 60_000 });
    const key = credentialKey(1);
    const latencies: number[] = [];
    let seen: LifecycleEvent[] = [];
    const stop = watcher.watch((events) => {
      seen.push(...events);
    });
    try {
      for (let i = 0; i < 10; i++) {
        seen = [];
        const started = performance.now();
        const result = await writer.writeCredential(
          credentialRecord(key),
          { expectedGeneration: 'any' },
          eventFor(key),
        );
        assert.ok(result.ok);
        assert.ok(await eventually(() => seen.some((e) => e.generation === result.generation), 1000));
        latencies.push(performance.now() - started);
      }
    } finally {
      stop();
    }
    latencies.sort((x, y) => x - y);
    const median = latencies[Math.floor(latencies.length / 2)]!;
    t.diagnostic(
      `write-to-watch latency: median ${median.toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`,
    );
    // The safety poll is a minute away: only the notice can have delivered these.
    assert.ok(latencies.at(-1)! < 1000);
  });

  it('no event is lost when the LISTEN connection drops: it reconnects and re-reads', async (t) => {
    const db = await database(t);
    const writer = await db.open();
    const watcher = await db.open({ watchSafetyPollMs: 60_000 });
    const key = credentialKey(1);
    const seen: LifecycleEvent[] = [];
    const stop = watcher.watch((events) => seen.push(...events));
    t.after(stop);
    const first = await writer.appendEvent(eventFor(key, 'reconnect'));
    assert.ok(await eventually(() => seen.length === 1, 1000));
    const killed = await adminQuery(
      db.url,
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = 'latchkey-listen'`,
    );
    assert.equal(killed.rowCount, 2, "both stores' LISTEN connections were terminated");
    // Written while the watcher is deaf: only the re-read after reconnecting can find these.
    const during = [];
    for (let i = 0; i < 5; i++)
      during.push(await writer.appendEvent(eventFor(key, 'reconnect', { detail: { i } })));
    assert.ok(await eventually(() => seen.length === 6, 3000), `delivered ${seen.length} of 6`);
    assert.deepEqual(
      seen.map((e) => e.id),
      [first.id, ...during.map((e) => e.id)],
      'each once, in order',
    );
    // And notices work again on the new connection.
    const after = await writer.appendEvent(eventFor(key, 'reconnect'));
    assert.ok(await eventually(() => seen.at(-1)?.id === after.id, 1000));
  });

  it('concurrent writers on three instances: a watcher gets every event once, in id order', async (t) => {
    const db = await database(t);
    const writers = await Promise.all([db.open(), db.open(), db.open()]);
    const watcher = await db.open({ watchSafetyPollMs: 60_000 });
    const seen: LifecycleEvent[] = [];
    const stop = watcher.watch((events) => seen.push(...events));
    t.after(stop);
    const written = (
      await Promise.all(
        writers.map(async (store, w) => {
          const mine: LifecycleEvent[] = [];
          for (let i = 0; i < 40; i++) {
            const key = credentialKey(`${w}-${i % 4}`);
            if (i % 2 === 0)
              mine.push(await store.appendEvent(eventFor(key, 'reconnect', { detail: { w, i } })));
            else
              await store.writeCredential(
                credentialRecord(key),
                { expectedGeneration: 'any' },
                eventFor(key),
              );
          }
          return mine;
        }),
      )
    ).flat();
    const all = await watcher.readEvents();
    assert.equal(all.length, 120);
    assert.ok(
      await eventually(() => seen.length >= all.length, 3000),
      `delivered ${seen.length} of ${all.length}`,
    );
    await sleep(100);
    assert.deepEqual(
      seen.map((e) => e.id),
      all.map((e) => e.id),
      'every event once, in id order',
    );
    for (const event of written) assert.ok(seen.some((e) => e.id === event.id));
  });

  it('a statement stuck behind a lock times out as a retryable STORE_UNAVAILABLE', async (t) => {
    const db = await database(t);
    const store = await db.open({ statementTimeoutMs: 300 });
    const key = credentialKey(1);
    await store.writeCredential(credentialRecord(key), { expectedGeneration: 0 }, eventFor(key));
    const blocker = new pg.Client({ connectionString: db.url });
    blocker.on('error', () => undefined);
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT * FROM credentials FOR UPDATE');
    try {
      await assert.rejects(
        store.writeCredential(credentialRecord(key), { expectedGeneration: 1 }, eventFor(key, 'refreshed')),
        latchkeyError('STORE_UNAVAILABLE', (e) => {
          assert.equal(e.retryable, true);
          assert.equal(e.next?.kind, 'retry');
        }),
      );
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    // Nothing was half-written, and the store works again once the lock is gone.
    assert.equal((await store.getCredential(key))?.generation, 1);
    assert.deepEqual(
      await store.writeCredential(
        credentialRecord(key),
        { expectedGeneration: 1 },
        eventFor(key, 'refreshed'),
      ),
      { ok: true, generation: 2 },
    );
  });

  it('a server outage: retryable STORE_UNAVAILABLE, then the store and its watch recover on their own', async (t) => {
    // Its own server, since this one goes down.
    const cluster = await startCluster();
    t.after(() => cluster.stop());
    const env = { LATCHKEY_KEY: newKey() };
    const writer = await openPostgresStore({ url: cluster.url, env, connectTimeoutMs: 1000 });
    const watcher = await openPostgresStore({ url: cluster.url, env, watchSafetyPollMs: 60_000 });
    t.after(async () => {
      await writer.close();
      await watcher.close();
    });
    const key = credentialKey(1);
    const seen: LifecycleEvent[] = [];
    const stop = watcher.watch((events) => seen.push(...events));
    t.after(stop);
    await writer.appendEvent(eventFor(key, 'reconnect'));
    assert.ok(await eventually(() => seen.length === 1, 1000));

    cluster.down();
    await assert.rejects(
      writer.appendEvent(eventFor(key, 'reconnect')),
      latchkeyError('STORE_UNAVAILABLE', (e) => assert.equal(e.retryable, true, e.message)),
    );
    cluster.up();
    // Retryable means it: the same store object works again once the server is back.
    let after: LifecycleEvent | undefined;
    const deadline = Date.now() + 5000;
    while (after === undefined) {
      try {
        after = await writer.appendEvent(eventFor(key, 'reconnect', { detail: { back: true } }));
      } catch (error) {
        if (Date.now() > deadline || !(error as { retryable?: boolean }).retryable) throw error;
        await sleep(100);
      }
    }
    // The watcher lost its LISTEN connection with the server; it reconnects and re-reads.
    assert.ok(
      await eventually(() => seen.some((e) => e.id === after.id), 8000),
      'delivered after the outage',
    );
    assert.equal(seen.filter((e) => e.id === after.id).length, 1);
  });

  it('five instances opening a new database at once migrate it once', async (t) => {
    const db = await database(t);
    const stores = await Promise.all(Array.from({ length: 5 }, () => db.open()));
    const versions = await adminQuery(db.url, 'SELECT version FROM schema_migrations ORDER BY version');
    assert.deepEqual(
      versions.rows.map((r: { version: number }) => r.version),
      Array.from({ length: PG_SCHEMA_VERSION }, (_, i) => i + 1),
    );
    const fingerprints = await adminQuery(db.url, `SELECT value FROM meta WHERE name = 'key_fingerprint'`);
    assert.equal(fingerprints.rowCount, 1);
    // All five work on the one schema.
    await Promise.all(stores.map((store, i) => store.appendEvent(eventFor(credentialKey(i), 'reconnect'))));
    assert.equal((await stores[0]!.readEvents()).length, 5);
  });

  it('refuses a schema newer than it knows', async (t) => {
    const db = await database(t);
    await (await db.open()).close();
    await adminQuery(db.url, 'INSERT INTO schema_migrations (version) VALUES (99)');
    await assert.rejects(
      db.open(),
      latchkeyError('STORE_UNAVAILABLE', (e) => assert.match(e.message, /failed/)),
    );
  });

  it('seals secrets with the data key, bound to their row, and refuses another key', async (t) => {
    const db = await database(t);
    const store = await db.open();
    const key = credentialKey(1);
    const record = credentialRecord(key);
    await store.writeCredential(record, { expectedGeneration: 0 }, eventFor(key));
    const clientSecret = secret('cs');
    await store.putRegistration({
      issuer: key.issuer,
      clientId: 'c',
      clientSecret,
      tokenEndpointAuthMethod: 'client_secret_basic',
      method: 'dynamic',
      registeredAt: 1,
    });
    const dump = await adminQuery(
      db.url,
      `SELECT (SELECT string_agg(encode(secrets, 'escape') || record || status, '') FROM credentials) ||
              (SELECT string_agg(encode(client_secret, 'escape') || record, '') FROM registrations) AS text`,
    );
    const text = (dump.rows[0] as { text: string }).text;
    for (const plain of [record.secrets.accessToken, record.secrets.refreshToken!, clientSecret]) {
      assert.ok(!text.includes(plain), 'no secret in plaintext');
    }
    // A sealed token copied onto another credential's row does not open there.
    const other = credentialKey(2);
    await store.writeCredential(credentialRecord(other), { expectedGeneration: 0 }, eventFor(other));
    await adminQuery(
      db.url,
      `UPDATE credentials SET secrets = (SELECT secrets FROM credentials WHERE server = $1) WHERE server = $2`,
      [key.server, other.server],
    );
    await assert.rejects(store.getCredential(other), latchkeyError('STORE_KEY_MISMATCH'));
    // Another key is refused at open, even though the store could be read "fine" otherwise.
    await assert.rejects(db.open({ env: { LATCHKEY_KEY: newKey() } }), latchkeyError('STORE_KEY_MISMATCH'));
  });

  it('keeps its data key only wrapped (nonce, tag, 32 sealed bytes), in data_keys, named active in meta', async (t) => {
    const db = await database(t);
    await db.open();
    const meta = await adminQuery(db.url, `SELECT name, value FROM meta ORDER BY name`);
    assert.deepEqual(
      meta.rows.map((r: { name: string }) => r.name),
      ['active_data_key', 'key_fingerprint', 'key_source'],
    );
    const keys = await adminQuery(db.url, `SELECT id, kek_id, wrapped FROM data_keys`);
    assert.equal(keys.rowCount, 1);
    const [row] = keys.rows as { id: string; kek_id: string; wrapped: Buffer }[];
    const value = (name: string): string =>
      (meta.rows as { name: string; value: string }[]).find((r) => r.name === name)!.value;
    assert.equal(row!.id, value('active_data_key'));
    assert.equal(row!.kek_id, value('key_fingerprint'));
    assert.equal(row!.wrapped.length, 12 + 16 + 32);
  });

  it('needs LATCHKEY_KEY or a keyring, and says so', async (t) => {
    const db = await database(t);
    await assert.rejects(
      openPostgresStore({
        url: db.url,
        env: {},
        keyringTimeoutMs: 500,
      }).then(async (store) => {
        // A keyring is running here (with-keyring.sh): the key comes from it, recorded as such.
        assert.equal(store.security.keySource, 'keyring');
        await store.close();
        throw Object.assign(new Error('keyring'), { keyring: true });
      }),
      (error: unknown) => {
        if ((error as { keyring?: boolean }).keyring === true) return true;
        return latchkeyError('KEYRING_UNAVAILABLE', (e) => assert.match(e.message, /LATCHKEY_KEY/))(error);
      },
    );
    // With the key recorded as LATCHKEY_KEY's, opening without it names what is missing.
    const envDb = await database(t);
    await (await envDb.open()).close();
    await assert.rejects(
      openPostgresStore({ url: envDb.url, env: {}, keyringTimeoutMs: 500 }),
      latchkeyError('STORE_KEY_MISMATCH', (e) => assert.match(e.message, /LATCHKEY_KEY/)),
    );
  });

  it('prunes the event log to the newest N on open', async (t) => {
    const db = await database(t);
    const store = await db.open();
    for (let i = 0; i < 12; i++)
      await store.appendEvent(eventFor(credentialKey(1), 'reconnect', { detail: { i } }));
    const last = await store.lastEventId();
    const pruned = await db.open({ keepEvents: 5 });
    const kept = await pruned.readEvents();
    assert.equal(kept.length, 5);
    assert.equal(kept.at(-1)?.id, last, 'the newest are kept');
  });

  it('prunes periodically while open', async (t) => {
    const db = await database(t);
    const store = await db.open({ keepEvents: 3, pruneIntervalMs: 50 });
    for (let i = 0; i < 10; i++) await store.appendEvent(eventFor(credentialKey(1), 'reconnect'));
    let count = Infinity;
    const deadline = Date.now() + 2000;
    while (count !== 3 && Date.now() < deadline) {
      await sleep(20);
      count = (await store.readEvents()).length;
    }
    assert.equal(count, 3, 'pruned to the newest 3 by the timer');
  });

  it('hides the password of the URL in security.location and in errors', async (t) => {
    const db = await database(t);
    const url = new URL(db.url);
    url.password = 'hunter2-very-secret';
    const store = await openPostgresStore({ url: url.toString(), env: { LATCHKEY_KEY: newKey() } });
    t.after(() => store.close());
    assert.ok(!store.security.location.includes('hunter2'));
    assert.match(store.security.location, /\*\*\*/);
    const unreachable = new URL(url);
    unreachable.port = '1';
    await assert.rejects(
      openPostgresStore({
        url: unreachable.toString(),
        env: { LATCHKEY_KEY: newKey() },
        connectTimeoutMs: 1000,
      }),
      latchkeyError('STORE_UNAVAILABLE', (e) => {
        assert.equal(e.retryable, true, 'a refused connection may pass');
        assert.ok(!e.message.includes('hunter2'));
        assert.ok(!JSON.stringify(e).includes('hunter2'));
      }),
    );
  });

  it('a missing database is a permanent, configuration error', async (t) => {
    const db = await database(t);
    const url = new URL(db.url);
    url.pathname = '/no_such_database_here';
    await assert.rejects(
      openPostgresStore({ url: url.toString(), env: { LATCHKEY_KEY: newKey() } }),
      latchkeyError('STORE_UNAVAILABLE', (e) => {
        assert.equal(e.retryable, false);
        assert.equal(e.next?.kind, 'configure');
      }),
    );
  });
});
