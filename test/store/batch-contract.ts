// The batch part of the store contract (src/store/contract.ts `writeCredentials`,
// `releaseLeases`), run by storeContract on every store. The fleet refresher group-commits
// its token writes with these, so each write in a batch must keep the guarantees of
// `writeCredential` on its own: a refused one is untouched and the others are written.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { CredentialKey } from '../../src/credential/key.js';
import type { CredentialStore, LeaseHolder, LifecycleEvent } from '../../src/store/contract.js';
import {
  type ContractSubject,
  credentialKey,
  credentialRecord,
  eventFor,
  eventually,
  secret,
} from './contract.js';

const holderA: LeaseHolder = { owner: 'batch-a:31:aaaa', pid: 31, host: 'batch-a' };
const holderB: LeaseHolder = { owner: 'batch-b:32:bbbb', pid: 32, host: 'batch-b' };

export function batchContract(current: () => ContractSubject): void {
  describe('batched writes and releases', () => {
    const store = (): CredentialStore => current().store;

    async function create(key: CredentialKey): Promise<void> {
      const result = await store().writeCredential(
        credentialRecord(key),
        { expectedGeneration: 0 },
        eventFor(key),
      );
      assert.deepEqual(result, { ok: true, generation: 1 });
    }

    function refreshOf(key: CredentialKey, expectedGeneration: number, leaseOwner = holderA.owner) {
      return {
        record: credentialRecord(key, {
          secrets: { accessToken: secret('new-at'), refreshToken: secret('new-rt') },
        }),
        condition: { expectedGeneration, leaseOwner },
        event: eventFor(key, 'refreshed', { generation: expectedGeneration + 1 }),
      };
    }

    it('a CAS conflict in a batch leaves the other rows written and the conflicted one untouched', async () => {
      const keys = [credentialKey(1), credentialKey(2), credentialKey(3)];
      for (const key of keys) {
        await create(key);
        assert.ok(await store().acquireLease(key, holderA, 60_000));
      }
      // Another writer moved key 2 on to generation 2 meanwhile.
      const [k1, k2, k3] = keys as [CredentialKey, CredentialKey, CredentialKey];
      assert.equal(
        (await store().writeCredential(credentialRecord(k2), { expectedGeneration: 1 }, eventFor(k2))).ok,
        true,
      );
      const untouched = await store().getCredential(k2);
      const before = await store().lastEventId();
      const writes = [refreshOf(k1, 1), refreshOf(k2, 1), refreshOf(k3, 1)];
      const results = await store().writeCredentials(writes);
      assert.deepEqual(results, [
        { ok: true, generation: 2 },
        { ok: false, reason: 'generation-mismatch', currentGeneration: 2 },
        { ok: true, generation: 2 },
      ]);
      assert.deepEqual(await store().getCredential(k2), untouched, 'the refused write changed nothing');
      for (const [i, key] of [k1, k3].entries()) {
        const stored = await store().getCredential(key);
        assert.equal(stored?.generation, 2);
        assert.deepEqual(stored.secrets, writes[i === 0 ? 0 : 2]?.record.secrets);
        assert.equal(stored.status.state, 'valid');
        assert.ok(stored.status.lastRefreshAt !== undefined, 'a refresh write records its time');
      }
      const events = await store().readEvents({ afterId: before });
      assert.deepEqual(
        events.map((e) => [e.type, e.server, e.generation]).sort(),
        [
          ['refreshed', k1.server, 2],
          ['refreshed', k3.server, 2],
        ].sort(),
        'one event per written row, none for the refused one',
      );
    });

    it('judges each write on its own lease and existence; creates and replacements are batched too', async () => {
      const [k1, k2, k3, k4, k5] = [1, 2, 3, 4, 5].map((n) => credentialKey(n)) as CredentialKey[] as [
        CredentialKey,
        CredentialKey,
        CredentialKey,
        CredentialKey,
        CredentialKey,
      ];
      await create(k1);
      await create(k2);
      await create(k4);
      assert.ok(await store().acquireLease(k1, holderA, 60_000));
      assert.ok(await store().acquireLease(k2, holderB, 60_000));
      const results = await store().writeCredentials([
        refreshOf(k1, 1),
        refreshOf(k2, 1), // holderB's lease
        refreshOf(k3, 1), // absent
        { record: credentialRecord(k4), condition: { expectedGeneration: 'any' }, event: eventFor(k4) },
        { record: credentialRecord(k5), condition: { expectedGeneration: 0 }, event: eventFor(k5) },
      ]);
      assert.deepEqual(results, [
        { ok: true, generation: 2 },
        { ok: false, reason: 'lease-lost', currentGeneration: 1 },
        { ok: false, reason: 'lease-lost' },
        { ok: true, generation: 2 },
        { ok: true, generation: 1 },
      ]);
      assert.equal((await store().getCredential(k2))?.generation, 1);
      assert.equal(await store().getCredential(k3), undefined);
      assert.equal((await store().getCredential(k5))?.generation, 1);
      assert.deepEqual(await store().writeCredentials([]), []);
      const missing = await store().writeCredentials([
        { ...refreshOf(k3, 1), condition: { expectedGeneration: 1 } },
      ]);
      assert.deepEqual(missing, [{ ok: false, reason: 'missing' }]);
    });

    it('a key written twice in one batch: the second write is judged after the first, as if alone', async () => {
      const key = credentialKey(1);
      await create(key);
      assert.ok(await store().acquireLease(key, holderA, 60_000));
      const first = refreshOf(key, 1);
      const replay = refreshOf(key, 1);
      const next = refreshOf(key, 2);
      const results = await store().writeCredentials([first, replay, next]);
      assert.deepEqual(results, [
        { ok: true, generation: 2 },
        { ok: false, reason: 'generation-mismatch', currentGeneration: 2 },
        { ok: true, generation: 3 },
      ]);
      const stored = await store().getCredential(key);
      assert.equal(stored?.generation, 3);
      assert.deepEqual(stored.secrets, next.record.secrets);
    });

    it("another instance's watcher is told of a batch's events", async () => {
      const reopen = current().reopen;
      // Another instance on the same data where the store has one (SQLite, Postgres: its NOTIFY).
      const other = reopen === undefined ? store() : await reopen();
      const seen: LifecycleEvent[] = [];
      const stop = other.watch((events) => seen.push(...events), { pollMs: 50 });
      try {
        const keys = [credentialKey(1), credentialKey(2)];
        for (const key of keys) {
          await create(key);
          assert.ok(await store().acquireLease(key, holderA, 60_000));
        }
        const created = seen.length;
        await store().writeCredentials(keys.map((key) => refreshOf(key, 1)));
        assert.ok(
          await eventually(() => seen.filter((e) => e.type === 'refreshed').length === 2, 1000),
          `the watcher saw ${seen.length - created} new events`,
        );
      } finally {
        stop();
      }
    });

    it('releaseLeases frees only the leases the owner holds on the keys named', async () => {
      const [k1, k2, k3] = [1, 2, 3].map((n) => credentialKey(n)) as [
        CredentialKey,
        CredentialKey,
        CredentialKey,
      ];
      assert.ok(await store().acquireLease(k1, holderA, 60_000));
      const b = await store().acquireLease(k2, holderB, 60_000);
      const kept = await store().acquireLease(k3, holderA, 60_000);
      await store().releaseLeases([k1, k2, credentialKey(9)], holderA.owner);
      assert.equal(await store().getLease(k1), undefined);
      assert.deepEqual(await store().getLease(k2), b, "another owner's lease stays");
      assert.deepEqual(await store().getLease(k3), kept, 'a key not named stays');
      await store().releaseLeases([], holderA.owner);
      assert.equal(await store().lastEventId(), 0, 'releases append no events');
    });
  });
}
