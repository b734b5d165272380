// One lock order on Postgres: a refresh's lease-checked write and a claim must not deadlock.
// `npm run bench fleet` met it under load (40P01): a claim whose snapshot predates another
// instance's lease locks the credential row (FOR UPDATE SKIP LOCKED sees it free), then its
// lease upsert waits for that lease row; the write holding the lease row waited for the
// credential row. When the write was the victim, the tokens the AS had just rotated were
// lost. This replays that interleaving on a real server, step by step.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

import pg from 'pg';

import { openPostgresStore } from '../../src/store/postgres.js';
import { acquire } from '../../src/store/postgres-leases.js';
import { keyValues } from '../../src/store/postgres-connection.js';
import { adminQuery, freshDatabase } from '../support/postgres.js';
import { credentialKey, credentialRecord, eventFor, sleep } from './contract.js';

describe('postgres store lock order', () => {
  it('a lease-checked write and a claim holding the credential row both finish, no deadlock', async (t) => {
    const db = await freshDatabase();
    const store = await openPostgresStore({
      url: db.url,
      env: { LATCHKEY_KEY: randomBytes(32).toString('base64') },
    });
    const claimer = new pg.Client({ connectionString: db.url });
    t.after(async () => {
      await claimer.end().catch(() => undefined);
      await store.close();
      await db.drop();
    });
    const key = credentialKey('lock-order');
    await store.writeCredential(credentialRecord(key), { expectedGeneration: 0 }, eventFor(key));
    const refresher = { owner: 'refresher:1:a', pid: 1, host: 'a' };
    assert.ok(await store.acquireLease(key, refresher, 60_000));

    // The stale claim: it holds the credential row, as claimDue's SELECT … FOR UPDATE does.
    await claimer.connect();
    await claimer.query('BEGIN');
    await claimer.query(
      'SELECT * FROM credentials WHERE server = $1 AND issuer = $2 AND subject = $3 FOR UPDATE',
      keyValues(key),
    );
    // The refresh's write, which must wait for that row.
    const write = store.writeCredential(
      credentialRecord(key),
      { expectedGeneration: 1, leaseOwner: refresher.owner },
      eventFor(key, 'refreshed'),
    );
    const outcome = write.then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    );
    for (let waiting = 0; waiting === 0;) {
      await sleep(10);
      const { rows } = await adminQuery(
        db.url,
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`,
        [db.name],
      );
      waiting = (rows[0] as { n: number }).n;
    }
    // The claim's lease upsert for that row: the lease is live, so it gets nothing, and it
    // must not wait for the write (that wait was the deadlock).
    const claimed = await acquire(claimer, key, { owner: 'other:2:b', pid: 2, host: 'b' }, 60_000);
    assert.equal(claimed, undefined, 'the live lease is not taken');
    await claimer.query('COMMIT');
    const done = await outcome;
    assert.deepEqual(done, { result: { ok: true, generation: 2 } }, 'the write went through');
    assert.equal((await store.getCredential(key))?.generation, 2);
  });
});
