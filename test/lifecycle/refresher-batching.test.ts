// The refresher's group commit (refresher/batched-store.ts) and client cache
// (refresher/client-cache.ts), on a real memory store: concurrent refreshes' writes go out
// together, each still judged on its own, and a batch that fails whole loses no write.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BatchedStore } from '../../src/lifecycle/refresher/batched-store.js';
import { ClientCache } from '../../src/lifecycle/refresher/client-cache.js';
import type { ClientContext } from '../../src/oauth/client-context.js';
import type { CredentialStore, LeaseHolder } from '../../src/store/contract.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { credentialKey, credentialRecord, eventFor, secret } from '../store/contract.js';

const holder: LeaseHolder = { owner: 'refresher:1:batch', pid: 1, host: 'refresher' };

/** The memory store, counting batch calls; `failBatches` makes writeCredentials throw. */
function countingStore(failBatches = false) {
  const store = createMemoryStore();
  const calls = { writeCredentials: [] as number[], releaseLeases: [] as number[] };
  const counted = new Proxy(store, {
    get(target, prop) {
      if (prop === 'writeCredentials') {
        return (writes: Parameters<CredentialStore['writeCredentials']>[0]) => {
          calls.writeCredentials.push(writes.length);
          if (failBatches) return Promise.reject(new Error('deadlock detected'));
          return target.writeCredentials(writes);
        };
      }
      if (prop === 'releaseLeases') {
        return (keys: Parameters<CredentialStore['releaseLeases']>[0], owner: string) => {
          calls.releaseLeases.push(keys.length);
          return target.releaseLeases(keys, owner);
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: counted, calls };
}

async function seed(store: CredentialStore, n: number) {
  const keys = Array.from({ length: n }, (_, i) => credentialKey(i));
  for (const key of keys) {
    await store.writeCredential(credentialRecord(key), { expectedGeneration: 0 }, eventFor(key));
    assert.ok(await store.acquireLease(key, holder, 60_000));
  }
  return keys;
}

function refreshWrites(batched: BatchedStore, keys: ReturnType<typeof credentialKey>[], stale: number) {
  return keys.map((key, i) =>
    batched.store.writeCredential(
      credentialRecord(key, { secrets: { accessToken: secret('new') } }),
      { expectedGeneration: i === stale ? 0 : 1, leaseOwner: holder.owner },
      eventFor(key, 'refreshed'),
    ),
  );
}

describe('refresher group commit', () => {
  for (const failBatches of [false, true]) {
    it(
      failBatches
        ? 'a batch that fails whole is retried write by write: no write is lost, the stale one is refused'
        : "concurrent refreshes' writes go out in one batch, each judged on its own",
      async () => {
        const { store, calls } = countingStore(failBatches);
        const keys = await seed(store, 5);
        const batched = new BatchedStore(store, holder.owner, 50);
        const results = await Promise.all(refreshWrites(batched, keys, 2));
        assert.deepEqual(calls.writeCredentials, [5], 'one batch of five');
        assert.deepEqual(
          results.map((r) => r.ok),
          [true, true, false, true, true],
        );
        for (const [i, key] of keys.entries()) {
          assert.equal((await store.getCredential(key))?.generation, i === 2 ? 1 : 2);
        }
        const refreshed = (await store.readEvents()).filter((e) => e.type === 'refreshed');
        assert.equal(refreshed.length, 4, 'one event per written refresh');
      },
    );
  }

  it('a batch holds at most `max` writes; the rest follow in the next', async () => {
    const { store, calls } = countingStore();
    const keys = await seed(store, 7);
    const batched = new BatchedStore(store, holder.owner, 3);
    const results = await Promise.all(refreshWrites(batched, keys, -1));
    assert.ok(results.every((r) => r.ok));
    assert.deepEqual(calls.writeCredentials, [3, 3, 1]);
  });

  it('lease releases of the moment go out together, and free the leases', async () => {
    const { store, calls } = countingStore();
    const keys = await seed(store, 4);
    const batched = new BatchedStore(store, holder.owner, 50);
    await Promise.all(keys.map((key) => batched.release(key)));
    assert.deepEqual(calls.releaseLeases, [4]);
    for (const key of keys) assert.equal(await store.getLease(key), undefined);
  });
});

describe('refresher client cache', () => {
  const key = credentialKey(1);
  const client = (n: number) => ({ server: `client-${n}` }) as unknown as ClientContext;

  it('loads once per ttl, per (server, issuer, client id); forget and failures drop it', async () => {
    let now = 1_000;
    const cache = new ClientCache(60_000, () => now);
    let loads = 0;
    const load = () => Promise.resolve(client(++loads));
    assert.equal((await cache.get(key, 'c', load)).server, 'client-1');
    assert.equal((await cache.get(credentialKey(1, { subject: 'other' }), 'c', load)).server, 'client-1');
    assert.equal((await cache.get(key, 'other-client', load)).server, 'client-2');
    now += 60_000;
    assert.equal((await cache.get(key, 'c', load)).server, 'client-3', 'reloaded after the ttl');
    cache.forget(key, 'c');
    assert.equal((await cache.get(key, 'c', load)).server, 'client-4', 'reloaded after a failure');
    await assert.rejects(cache.get(credentialKey(2), 'c', () => Promise.reject(new Error('store down'))));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(
      (await cache.get(credentialKey(2), 'c', load)).server,
      'client-5',
      'a failed load is not kept',
    );
  });

  it('a registration a claim saw changed (a new client secret) builds a new client', async () => {
    const cache = new ClientCache(60_000, () => 1_000);
    let loads = 0;
    const load = () => Promise.resolve(client(++loads));
    const reg = {
      issuer: key.issuer,
      clientId: 'c',
      clientSecret: 'secret-1',
      tokenEndpointAuthMethod: 'client_secret_basic',
      method: 'pre-registered' as const,
      registeredAt: 5,
    };
    cache.observe(key.issuer, reg);
    assert.equal((await cache.get(key, 'c', load)).server, 'client-1');
    cache.observe(key.issuer, { ...reg });
    assert.equal((await cache.get(key, 'c', load)).server, 'client-1', 'the same registration');
    const rotated = { ...reg, clientSecret: 'secret-2' };
    cache.observe(key.issuer, rotated);
    assert.equal((await cache.get(key, 'c', load)).server, 'client-2', 'a new secret: built again');
    cache.forget(key, 'c');
    assert.equal((await cache.get(key, 'c', load)).server, 'client-3', 'forget drops it');
  });
});
