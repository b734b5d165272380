// The due index part of the store contract (src/store/contract.ts `DueIndex`), run by
// storeContract on every store: memory and SQLite here, Postgres once it implements it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { DUE_JITTER, refreshPointAt } from '../../src/credential/due.js';
import { mandatoryRefreshAt } from '../../src/credential/expiry.js';
import type { CredentialKey } from '../../src/credential/key.js';
import type { CredentialRecord } from '../../src/credential/model.js';
import type { CredentialStore, LeaseHolder } from '../../src/store/contract.js';
import { credentialKey, credentialRecord, eventFor, sleep } from './contract.js';

const claimer: LeaseHolder = { owner: 'refresher-a:11:aaaa', pid: 11, host: 'refresher-a' };
const other: LeaseHolder = { owner: 'refresher-b:22:bbbb', pid: 22, host: 'refresher-b' };
/** Far enough in the future that every credential with a due time is due. */
const LATER = 4_000_000_000_000;

export function dueIndexContract(current: () => CredentialStore): void {
  describe('due index', () => {
    async function create(key: CredentialKey, overrides: Partial<CredentialRecord> = {}) {
      const record = credentialRecord(key, overrides);
      const result = await current().writeCredential(record, { expectedGeneration: 0 }, eventFor(key));
      assert.equal(result.ok, true);
      return record;
    }

    it('a credential comes due at its jittered refresh point, not before', async () => {
      const store = current();
      const record = await create(credentialKey(1));
      const at = refreshPointAt(record);
      assert.ok(at !== undefined);
      assert.ok(at > record.obtainedAt && at < mandatoryRefreshAt(record));
      assert.equal(await store.countDue(at - 1), 0);
      assert.equal(await store.countDue(at), 1);
      assert.equal(await store.nextDueAt(), at);
      assert.deepEqual(
        await store.claimDueCredentials({ holder: claimer, ttlMs: 60_000, limit: 10, now: at - 1 }),
        [],
      );
      const [claimed] = await store.claimDueCredentials({
        holder: claimer,
        ttlMs: 60_000,
        limit: 10,
        now: at,
      });
      assert.deepEqual(claimed?.secrets, record.secrets, 'claims come with their secrets');
      assert.equal(claimed.generation, 1);
    });

    it('credentials issued together come due spread out, each at a fixed point', async () => {
      const store = current();
      const records = [];
      for (let n = 0; n < 40; n++) records.push(await create(credentialKey(n)));
      const points = records.map((r) => refreshPointAt(r) ?? NaN).sort((a, b) => a - b);
      const first = records[0]!;
      const usable = mandatoryRefreshAt(first) - first.obtainedAt;
      const spread = points.at(-1)! - points[0]!;
      assert.ok(spread > usable * DUE_JITTER, `40 keys spread over ${spread} ms of ${usable} ms`);
      assert.ok(new Set(points).size >= 38, 'nearly every key has its own point');
      // The store orders claims by that point, and agrees with it exactly.
      const claimed = await store.claimDueCredentials({
        holder: claimer,
        ttlMs: 60_000,
        limit: 40,
        now: LATER,
      });
      assert.deepEqual(
        claimed.map((c) => refreshPointAt(c)),
        points,
      );
      assert.equal(await store.countDue(points[19]), 20);
    });

    it('never due: no refresh token, no known expiry, needs-login', async () => {
      const store = current();
      await create(credentialKey('no-rt'), { secrets: { accessToken: 'at-only' } });
      const { expiresAt: _e, ...noExpiry } = credentialRecord(credentialKey('no-exp'));
      assert.equal(
        (await store.writeCredential(noExpiry, { expectedGeneration: 0 }, eventFor(noExpiry.key))).ok,
        true,
      );
      const dead = await create(credentialKey('dead'));
      assert.equal(await store.countDue(LATER), 1);
      await store.updateStatus(
        dead.key,
        { state: 'needs-login', failures: 1 },
        eventFor(dead.key, 'needs-login'),
      );
      assert.equal(await store.countDue(LATER), 0);
      assert.equal(await store.nextDueAt(), undefined);
      assert.deepEqual(
        await store.claimDueCredentials({ holder: claimer, ttlMs: 60_000, limit: 10, now: LATER }),
        [],
      );
      // A new login (a write) makes it due again.
      await store.writeCredential(
        credentialRecord(dead.key),
        { expectedGeneration: 'any' },
        eventFor(dead.key),
      );
      assert.equal(await store.countDue(LATER), 1);
    });

    it('a backoff or Retry-After pushes the due time to nextAttemptAt; a refresh resets it', async () => {
      const store = current();
      const record = await create(credentialKey(1));
      const point = refreshPointAt(record)!;
      const nextAttemptAt = point + 90_000;
      await store.updateStatus(record.key, { state: 'retrying', failures: 2, nextAttemptAt });
      assert.equal(await store.nextDueAt(), nextAttemptAt);
      assert.equal(await store.countDue(nextAttemptAt - 1), 0);
      assert.equal(await store.countDue(nextAttemptAt), 1);
      // A backoff that ends before the refresh point does not make it due earlier.
      await store.updateStatus(record.key, { state: 'retrying', failures: 1, nextAttemptAt: point - 5000 });
      assert.equal(await store.nextDueAt(), point);
      const fresh = credentialRecord(record.key, { obtainedAt: point, expiresAt: point + 360_000 });
      await store.writeCredential(fresh, { expectedGeneration: 1 }, eventFor(record.key, 'refreshed'));
      assert.equal(await store.nextDueAt(), refreshPointAt(fresh));
    });

    it('claims lease what they return: earliest first, up to the limit, never twice', async () => {
      const store = current();
      for (let n = 0; n < 5; n++) await create(credentialKey(n));
      const before = Date.now();
      const first = await store.claimDueCredentials({ holder: claimer, ttlMs: 60_000, limit: 3, now: LATER });
      assert.equal(first.length, 3);
      for (const cred of first) {
        const lease = await store.getLease(cred.key);
        assert.equal(lease?.owner, claimer.owner);
        assert.ok(lease.expiresAt >= before + 60_000);
        // The same lease an on-demand refresh takes: it is refused while the claim lives ...
        assert.equal(await store.acquireLease(cred.key, other, 60_000), undefined);
      }
      // ... and a write under the claim is a write under the lease.
      const [one] = first;
      assert.ok(one !== undefined);
      const written = await store.writeCredential(
        credentialRecord(one.key),
        { expectedGeneration: 1, leaseOwner: claimer.owner },
        eventFor(one.key, 'refreshed'),
      );
      assert.equal(written.ok, true);
      const again = await store.claimDueCredentials({
        holder: claimer,
        ttlMs: 60_000,
        limit: 10,
        now: LATER,
      });
      const second = await store.claimDueCredentials({ holder: other, ttlMs: 60_000, limit: 10, now: LATER });
      const keys = [...first, ...again, ...second].map((c) => c.key.server);
      assert.equal(again.length + second.length, 2, 'only the two unclaimed ones are left');
      assert.equal(new Set(keys).size, 5, 'no credential was handed out twice');
      assert.equal(await store.countDue(LATER), 5, 'claimed credentials still count as backlog');
    });

    it('a live lease taken for an on-demand refresh keeps it out; expired and released leases do not', async () => {
      const store = current();
      const a = await create(credentialKey('a'));
      const b = await create(credentialKey('b'));
      const lease = await store.acquireLease(a.key, other, 60_000);
      assert.ok(lease !== undefined);
      const short = await store.acquireLease(b.key, other, 40);
      assert.ok(short !== undefined);
      // Both are overdue; the earliest claimable moment is when the shorter lease ends.
      assert.equal(await store.nextDueAt(), short.expiresAt);
      await sleep(60);
      const takeovers: string[] = [];
      const claimed = await store.claimDueCredentials({
        holder: claimer,
        ttlMs: 60_000,
        limit: 10,
        now: LATER,
        onTakeover: (key, owner) => takeovers.push(`${key.server} ${owner}`),
      });
      assert.deepEqual(
        claimed.map((c) => c.key.server),
        [b.key.server],
        'the expired lease was taken over',
      );
      assert.deepEqual(takeovers, [`${b.key.server} ${other.owner}`], 'and the takeover is reported');
      assert.equal((await store.getLease(b.key))?.owner, claimer.owner);
      assert.equal(await store.nextDueAt(), lease.expiresAt, 'a was held until its lease ends');
      await store.releaseLease(a.key, other.owner);
      const after = await store.claimDueCredentials({
        holder: claimer,
        ttlMs: 60_000,
        limit: 10,
        now: LATER,
        onTakeover: (key, owner) => takeovers.push(`${key.server} ${owner}`),
      });
      assert.equal(takeovers.length, 1, 'a released lease is no takeover');
      assert.deepEqual(
        after.map((c) => c.key.server),
        [a.key.server],
      );
    });

    it('excluded issuers are left alone', async () => {
      const store = current();
      await create(credentialKey(1, { issuer: 'https://as1.example.com' }));
      await create(credentialKey(2, { issuer: 'https://as2.example.com' }));
      const claimed = await store.claimDueCredentials({
        holder: claimer,
        ttlMs: 60_000,
        limit: 10,
        now: LATER,
        excludeIssuers: ['https://as1.example.com'],
      });
      assert.deepEqual(
        claimed.map((c) => c.key.issuer),
        ['https://as2.example.com'],
      );
    });

    it('a refresh-token expiry brings the due time forward', async () => {
      const store = current();
      const base = credentialRecord(credentialKey(1));
      const rtExpiry = base.obtainedAt + 100_000; // well before 3/4 of the 360 s lifetime
      const record = await create(base.key, { refreshTokenExpiresAt: rtExpiry });
      const at = await store.nextDueAt();
      assert.ok(at !== undefined && at < rtExpiry && at === refreshPointAt(record));
    });
  });
}
