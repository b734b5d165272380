// The store contract, as tests. Every CredentialStore implementation runs this same suite
// (test/store/*.test.ts), so the lifecycle engine can rely on the semantics, not on a backend.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';

import type { CredentialKey } from '../../src/credential/key.js';
import type { CredentialRecord } from '../../src/credential/model.js';
import { isLatchkeyError } from '../../src/errors.js';
import type { CredentialStore, LeaseHolder, LifecycleEvent } from '../../src/store/contract.js';

export interface StoreFixture {
  store: CredentialStore;
  /** Close and open the same store again (persistent stores only). */
  reopen?: () => Promise<CredentialStore>;
  cleanup: () => Promise<void>;
}

export const KEY: CredentialKey = {
  server: 'https://mcp.example.com/mcp',
  issuer: 'https://as.example.com',
  subject: 'local',
};
const OTHER: CredentialKey = { ...KEY, server: 'https://other.example.com/mcp' };
const HOLDER_A: LeaseHolder = { owner: 'host:1:a', pid: 1, host: 'host' };
const HOLDER_B: LeaseHolder = { owner: 'host:2:b', pid: 2, host: 'host' };

export function record(key: CredentialKey = KEY, token = randomBytes(16).toString('hex')): CredentialRecord {
  return {
    key,
    secrets: { accessToken: `at-${token}`, refreshToken: `rt-${token}` },
    tokenType: 'Bearer',
    scopes: ['mcp:tools'],
    clientId: 'client-1',
    obtainedAt: 1_000,
    expiresAt: 3_601_000,
    expirySource: 'expires_in',
    owned: true,
  };
}

const acquired = (key: CredentialKey = KEY) => ({ type: 'acquired' as const, ...key });

export function storeContract(name: string, open: () => Promise<StoreFixture>): void {
  describe(`store contract: ${name}`, () => {
    let fx: StoreFixture;
    let store: CredentialStore;
    beforeEach(async () => {
      fx = await open();
      store = fx.store;
    });
    afterEach(() => fx.cleanup());

    it('writes, reads and lists credentials by filter', async () => {
      const rec = record();
      assert.deepEqual(await store.writeCredential(rec, { expectedGeneration: 0 }, acquired()), {
        ok: true,
        generation: 1,
      });
      await store.writeCredential(record(OTHER), { expectedGeneration: 0 }, acquired(OTHER));
      const got = await store.getCredential(KEY);
      assert.ok(got !== undefined);
      assert.deepEqual(got.secrets, rec.secrets);
      assert.deepEqual(got.scopes, rec.scopes);
      assert.equal(got.expiresAt, rec.expiresAt);
      assert.equal(got.generation, 1);
      assert.deepEqual(got.status, { state: 'valid', failures: 0 });
      assert.equal((await store.listCredentials()).length, 2);
      assert.deepEqual(
        (await store.listCredentials({ server: OTHER.server })).map((c) => c.key),
        [OTHER],
      );
      assert.equal((await store.listCredentials({ subject: 'nobody' })).length, 0);
      assert.equal(await store.getCredential({ ...KEY, subject: 'someone-else' }), undefined);
    });

    it('token writes are compare-and-set on generation', async () => {
      await store.writeCredential(record(), { expectedGeneration: 0 }, acquired());
      const eventsBefore = await store.lastEventId();
      assert.deepEqual(await store.writeCredential(record(), { expectedGeneration: 0 }, acquired()), {
        ok: false,
        reason: 'generation-mismatch',
        currentGeneration: 1,
      });
      assert.deepEqual(await store.writeCredential(record(), { expectedGeneration: 7 }, acquired()), {
        ok: false,
        reason: 'generation-mismatch',
        currentGeneration: 1,
      });
      assert.deepEqual(
        await store.writeCredential(record(OTHER), { expectedGeneration: 3 }, acquired(OTHER)),
        {
          ok: false,
          reason: 'missing',
        },
      );
      assert.equal(await store.lastEventId(), eventsBefore, 'refused writes append no event');
      const next = record();
      assert.deepEqual(
        await store.writeCredential(next, { expectedGeneration: 1 }, { type: 'refreshed', ...KEY }),
        {
          ok: true,
          generation: 2,
        },
      );
      assert.deepEqual(await store.writeCredential(record(), { expectedGeneration: 'any' }, acquired()), {
        ok: true,
        generation: 3,
      });
      assert.equal((await store.getCredential(KEY))?.generation, 3);
    });

    it('a write conditional on the lease fails once the lease is lost', async () => {
      await store.writeCredential(record(), { expectedGeneration: 0 }, acquired());
      assert.deepEqual(
        await store.writeCredential(
          record(),
          { expectedGeneration: 1, leaseOwner: HOLDER_A.owner },
          acquired(),
        ),
        { ok: false, reason: 'lease-lost', currentGeneration: 1 },
      );
      assert.ok(await store.acquireLease(KEY, HOLDER_A, 10_000));
      const ok = await store.writeCredential(
        record(),
        { expectedGeneration: 1, leaseOwner: HOLDER_A.owner },
        acquired(),
      );
      assert.equal(ok.ok, true);
      await store.releaseLease(KEY, HOLDER_A.owner);
      assert.ok(await store.acquireLease(KEY, HOLDER_B, 10_000));
      const lost = await store.writeCredential(
        record(),
        { expectedGeneration: 2, leaseOwner: HOLDER_A.owner },
        acquired(),
      );
      assert.deepEqual(lost, { ok: false, reason: 'lease-lost', currentGeneration: 2 });
    });

    it('a successful write resets status; updateStatus keeps tokens and generation', async () => {
      const rec = record();
      await store.writeCredential(rec, { expectedGeneration: 0 }, acquired());
      const failing = {
        state: 'retrying' as const,
        failures: 3,
        nextAttemptAt: 99,
        lastError: { code: 'X', message: 'down', at: 5 },
      };
      await store.updateStatus(KEY, failing, { type: 'refresh-failed', ...KEY, detail: { status: 503 } });
      const after = await store.getCredential(KEY);
      assert.deepEqual(after?.status, failing);
      assert.equal(after?.generation, 1);
      assert.deepEqual(after?.secrets, rec.secrets);
      const events = await store.readEvents();
      assert.deepEqual(events.at(-1)?.detail, { status: 503 });
      await store.writeCredential(record(), { expectedGeneration: 1 }, { type: 'refreshed', ...KEY });
      const healed = await store.getCredential(KEY);
      assert.equal(healed?.status.state, 'valid');
      assert.equal(healed?.status.failures, 0);
      const last = await store.lastEventId();
      await store.updateStatus(OTHER, failing, { type: 'refresh-failed', ...OTHER });
      assert.equal(await store.lastEventId(), last, 'status of an absent credential: no-op, no event');
      assert.equal(await store.getCredential(OTHER), undefined);
    });

    it('deletes conditionally, removes the lease and appends the event', async () => {
      await store.writeCredential(record(), { expectedGeneration: 0 }, acquired());
      assert.ok(await store.acquireLease(KEY, HOLDER_A, 10_000));
      assert.equal(
        await store.deleteCredential(KEY, { expectedGeneration: 5 }, { type: 'revoked', ...KEY }),
        false,
      );
      assert.equal(
        await store.deleteCredential(
          KEY,
          { expectedGeneration: 1, leaseOwner: HOLDER_B.owner },
          { type: 'revoked', ...KEY },
        ),
        false,
      );
      assert.ok(await store.getCredential(KEY));
      assert.equal(
        await store.deleteCredential(
          KEY,
          { expectedGeneration: 1, leaseOwner: HOLDER_A.owner },
          { type: 'revoked', ...KEY },
        ),
        true,
      );
      assert.equal(await store.getCredential(KEY), undefined);
      assert.equal(await store.getLease(KEY), undefined);
      assert.equal((await store.readEvents()).at(-1)?.type, 'revoked');
      assert.equal(
        await store.deleteCredential(KEY, { expectedGeneration: 'any' }, { type: 'deleted', ...KEY }),
        false,
      );
    });

    it('keeps registrations per issuer, secrets included', async () => {
      await store.putRegistration({
        issuer: 'https://as.example.com',
        clientId: 'c1',
        clientSecret: 's3cret-value',
        tokenEndpointAuthMethod: 'client_secret_basic',
        method: 'dynamic',
        metadata: { redirect_uris: ['http://127.0.0.1/cb'] },
        registeredAt: 10,
      });
      await store.putRegistration({
        issuer: 'https://as2.example.com',
        clientId: 'c2',
        tokenEndpointAuthMethod: 'none',
        method: 'pre-registered',
        registeredAt: 11,
      });
      const r1 = await store.getRegistration('https://as.example.com');
      assert.equal(r1?.clientSecret, 's3cret-value');
      assert.deepEqual(r1?.metadata, { redirect_uris: ['http://127.0.0.1/cb'] });
      const r2 = await store.getRegistration('https://as2.example.com');
      assert.equal(r2?.clientId, 'c2');
      assert.equal(r2?.clientSecret, undefined);
      await store.deleteRegistration('https://as.example.com');
      assert.equal(await store.getRegistration('https://as.example.com'), undefined);
      assert.ok(await store.getRegistration('https://as2.example.com'));
    });

    it('caches discovery documents by kind and id', async () => {
      const doc = {
        kind: 'protected-resource' as const,
        id: KEY.server,
        document: { resource: KEY.server },
        sourceUrl: 'u',
        fetchedAt: 1,
      };
      await store.putDiscovery(doc);
      assert.deepEqual(await store.getDiscovery('protected-resource', KEY.server), doc);
      assert.equal(await store.getDiscovery('authorization-server', KEY.server), undefined);
      await store.putDiscovery({ ...doc, fetchedAt: 2 });
      assert.equal((await store.getDiscovery('protected-resource', KEY.server))?.fetchedAt, 2);
      await store.deleteDiscovery('protected-resource', KEY.server);
      assert.equal(await store.getDiscovery('protected-resource', KEY.server), undefined);
    });

    it('leases: exclusive while live, extended by the owner, free after expiry', async () => {
      const a = await store.acquireLease(KEY, HOLDER_A, 10_000);
      assert.equal(a?.owner, HOLDER_A.owner);
      assert.equal(
        await store.acquireLease(KEY, HOLDER_B, 10_000),
        undefined,
        'a live lease excludes others',
      );
      const extended = await store.acquireLease(KEY, HOLDER_A, 20_000);
      assert.ok(extended !== undefined && a !== undefined && extended.expiresAt > a.expiresAt);
      assert.equal(extended.acquiredAt, a.acquiredAt);
      await store.releaseLease(KEY, HOLDER_B.owner);
      assert.equal((await store.getLease(KEY))?.owner, HOLDER_A.owner, 'only the owner can release');
      await store.releaseLease(KEY, HOLDER_A.owner);
      assert.equal(await store.getLease(KEY), undefined);

      assert.ok(await store.acquireLease(KEY, HOLDER_A, 50));
      await new Promise((r) => setTimeout(r, 80));
      assert.equal(await store.getLease(KEY), undefined, 'an expired lease is not reported');
      assert.equal(
        (await store.acquireLease(KEY, HOLDER_B, 10_000))?.owner,
        HOLDER_B.owner,
        'and can be taken',
      );

      assert.equal(await store.breakLease(KEY, HOLDER_A.owner), false, 'break names the stale owner');
      assert.equal(await store.breakLease(KEY, HOLDER_B.owner), true);
      assert.equal(await store.getLease(KEY), undefined);
      assert.ok(await store.acquireLease(OTHER, HOLDER_A, 10_000), 'leases need no credential');
    });

    it('events: ordered ids, filters, and no secrets', async () => {
      const first = await store.appendEvent({ type: 'reconnect', ...KEY, detail: { reason: 'x' } });
      const rec = record();
      await store.writeCredential(rec, { expectedGeneration: 0 }, acquired());
      await store.writeCredential(record(OTHER), { expectedGeneration: 0 }, acquired(OTHER));
      const all = await store.readEvents();
      assert.ok(all.length >= 3);
      for (let i = 1; i < all.length; i++) assert.ok((all[i]?.id ?? 0) > (all[i - 1]?.id ?? 0));
      assert.equal(await store.lastEventId(), all.at(-1)?.id);
      assert.equal((await store.readEvents({ afterId: first.id })).length, all.length - 1);
      assert.deepEqual(
        (await store.readEvents({ server: OTHER.server })).map((e) => e.server),
        [OTHER.server],
      );
      assert.equal((await store.readEvents({ limit: 1 })).length, 1);
      const written = all.find((e) => e.type === 'acquired' && e.server === KEY.server);
      assert.equal(written?.generation, 1, 'a token write records its new generation');
      assert.equal(written?.pid, process.pid);
      const text = JSON.stringify(all);
      assert.ok(!text.includes(rec.secrets.accessToken) && !text.includes(rec.secrets.refreshToken ?? '-'));
    });

    it('watch delivers later events until unsubscribed', async () => {
      const seen: LifecycleEvent[] = [];
      await store.appendEvent({ type: 'reconnect', ...KEY });
      const stop = store.watch((events) => seen.push(...events), { pollMs: 20 });
      await store.appendEvent({ type: 'reconnect', ...OTHER });
      await store.writeCredential(record(), { expectedGeneration: 0 }, acquired());
      await waitFor(() => seen.length >= 2);
      assert.deepEqual(
        seen.map((e) => [e.type, e.server]),
        [
          ['reconnect', OTHER.server],
          ['acquired', KEY.server],
        ],
      );
      stop();
      await store.appendEvent({ type: 'reconnect', ...KEY });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(seen.length, 2);
    });

    it('returns copies, never live state', async () => {
      await store.writeCredential(record(), { expectedGeneration: 0 }, acquired());
      const got = await store.getCredential(KEY);
      assert.ok(got !== undefined);
      got.secrets.accessToken = 'mutated';
      (got.scopes as string[]).push('admin');
      const again = await store.getCredential(KEY);
      assert.notEqual(again?.secrets.accessToken, 'mutated');
      assert.deepEqual(again?.scopes, ['mcp:tools']);
    });

    it('survives close and reopen; a closed store refuses work', async () => {
      const rec = record();
      await store.writeCredential(rec, { expectedGeneration: 0 }, acquired());
      if (fx.reopen !== undefined) {
        const reopened = await fx.reopen();
        store = reopened;
        assert.deepEqual((await reopened.getCredential(KEY))?.secrets, rec.secrets);
      }
      await store.close();
      await assert.rejects(
        store.getCredential(KEY),
        (e: unknown) => isLatchkeyError(e) && e.code === 'STORE_UNAVAILABLE',
      );
    });
  });
}

export async function waitFor(predicate: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
