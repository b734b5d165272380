// The Postgres store's own costs, on a real server (the run's LATCHKEY_TEST_PG_URL, else a
// private throwaway cluster): how soon another instance's write reaches a watcher through
// LISTEN/NOTIFY (issue 16: under 100 ms), and what a lease and a compare-and-set write cost.
import { randomBytes } from 'node:crypto';

import type { CredentialStore, LifecycleEvent } from '../src/store/contract.js';
import { openPostgresStore } from '../src/store/postgres.js';
import { credentialKey, credentialRecord, eventFor } from '../test/store/contract.js';
import { freshDatabase } from '../test/support/postgres.js';

const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
const ms = (value: number): string => `${value.toFixed(2)} ms`;

export async function benchPostgres(): Promise<Record<string, string | number>> {
  const db = await freshDatabase();
  const env = { LATCHKEY_KEY: randomBytes(32).toString('base64') };
  const stores: CredentialStore[] = [];
  const open = async (): Promise<CredentialStore> => {
    // The safety re-read is pushed out of the way: only notices deliver here.
    const store = await openPostgresStore({ url: db.url, env, watchSafetyPollMs: 600_000 });
    stores.push(store);
    return store;
  };
  try {
    const writer = await open();
    const watcher = await open();
    const latency = await writeToWatch(writer, watcher, 300);
    const key = credentialKey('bench');
    const holder = { owner: 'bench:1:x', pid: 1, host: 'bench' };
    const leases = await rate(2000, async () => {
      await writer.acquireLease(key, holder, 30_000);
      await writer.releaseLease(key, holder.owner);
    });
    let generation = 0;
    await writer.writeCredential(credentialRecord(key), { expectedGeneration: 0 }, eventFor(key));
    generation = 1;
    const writes = await rate(1000, async () => {
      const result = await writer.writeCredential(
        credentialRecord(key),
        { expectedGeneration: generation },
        eventFor(key, 'refreshed'),
      );
      if (result.ok) generation = result.generation;
    });
    return {
      'write → other instance watch, p50': ms(pct(latency, 0.5)),
      'write → other instance watch, p95': ms(pct(latency, 0.95)),
      'write → other instance watch, p99': ms(pct(latency, 0.99)),
      'write → other instance watch, max': ms(latency.at(-1) ?? NaN),
      'lease acquire + release, sequential (pairs/s)': Math.round(leases),
      'CAS credential write + event, sequential (writes/s)': Math.round(writes),
    };
  } finally {
    for (const store of stores) await store.close();
    await db.drop();
  }
}

async function writeToWatch(
  writer: CredentialStore,
  watcher: CredentialStore,
  rounds: number,
): Promise<number[]> {
  const key = credentialKey('watch');
  const samples: number[] = [];
  let waiting: { id: number; resolve: () => void } | undefined;
  let newest = 0;
  const stop = watcher.watch((events: LifecycleEvent[]) => {
    newest = Math.max(newest, ...events.map((e) => e.id));
    if (waiting !== undefined && newest >= waiting.id) waiting.resolve();
  });
  try {
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      const event = await writer.appendEvent(eventFor(key, 'reconnect'));
      if (newest < event.id) await new Promise<void>((resolve) => (waiting = { id: event.id, resolve }));
      waiting = undefined;
      samples.push(performance.now() - started);
    }
  } finally {
    stop();
  }
  return samples.sort((a, b) => a - b);
}

async function rate(count: number, step: () => Promise<void>): Promise<number> {
  for (let i = 0; i < 50; i++) await step();
  const started = performance.now();
  for (let i = 0; i < count; i++) await step();
  return count / ((performance.now() - started) / 1000);
}
