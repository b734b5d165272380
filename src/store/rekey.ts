import { setTimeout as delay } from 'node:timers/promises';

import type { CredentialStore } from './contract.js';
import { newDataKey } from './crypto.js';
import type { KeySource } from './data-key.js';
import { type KeyProvider, newKeyId } from './envelope.js';
import { type StoreKeys, storeKeysOf, unwrapKeys, type WrappedKey } from './key-table.js';

export interface RekeyOptions {
  /**
   * Move the store to this key-encryption key as well. Default: keep the current KEK and
   * rotate the data key only. `source` is recorded so the next open looks in the right place.
   */
  newKek?: { provider: KeyProvider; source: KeySource };
  /**
   * Called once every data key in use has a copy wrapped by `newKek`, before the copies under
   * the old KEK are dropped: the moment to put the new KEK where the next open will find it
   * (the keyring entry). A failure here stops the rotation with the old KEK still valid.
   */
  commitKek?: () => Promise<void>;
  /** Only finish a rotation that was interrupted (a killed process); start none. Default false. */
  resume?: boolean;
  /** Values re-sealed per transaction. Default 100: each write lock is held for about a millisecond. */
  batchSize?: number;
  /** Pause between batches, so other processes' writes get the lock. Default 10 ms. */
  pauseMs?: number;
  /** Stops between batches; what was re-sealed stays, and `resume` finishes later. */
  signal?: AbortSignal;
  onProgress?: (progress: RekeyProgress) => void;
}

export interface RekeyProgress {
  /** Values re-sealed by this call so far. */
  resealed: number;
}

export interface RekeyResult {
  /** The data key every value is now sealed with. */
  dataKey: string;
  /** The KEK that wraps it (KeyProvider id). */
  kek: string;
  resealed: number;
  /** Data keys deleted because no value used them any more. */
  dropped: string[];
}

/**
 * Rotate a store's data key (and optionally its KEK) without stopping anyone: a new data key
 * becomes active in one transaction, so every write from then on, in any process, uses it
 * (each write transaction checks the active key); old values are re-sealed in small batches;
 * the old data key is deleted only when no value uses it. Every step is idempotent, so a
 * rotation killed at any point is finished by running this again with `resume`.
 *
 * A KEK change takes two runs, so that no process has to stop: the first (with `newKek`)
 * rotates the data key and adds copies under the new KEK while the old KEK keeps working;
 * once every process runs with the new KEK, a second run with it (`resume`) deletes the
 * copies under the old one.
 */
export async function rekeyStore(store: CredentialStore, options: RekeyOptions = {}): Promise<RekeyResult> {
  const keys = storeKeysOf(store);
  await keys.reload();
  const target = options.newKek ?? { provider: keys.provider, source: keys.source };
  if (options.resume !== true) await startRotation(keys, target.provider);
  if (options.newKek !== undefined) {
    await options.commitKek?.();
    keys.useProvider(target.provider, target.source);
    await keys.table.recordKek({ source: target.source, fingerprint: target.provider.id });
  }
  const resealed = await resealAll(keys, options);
  // After a KEK change the old KEK's copies stay, so processes still running with it go on;
  // the next rekey run with the new KEK (e.g. `resume`, after they restarted) removes them.
  const dropped = await keys.table.prune(options.newKek === undefined ? target.provider.id : undefined);
  const state = await keys.table.read();
  return { dataKey: state.active ?? '', kek: target.provider.id, resealed, dropped };
}

async function startRotation(keys: StoreKeys, target: KeyProvider): Promise<void> {
  const state = await keys.table.read();
  const id = newKeyId();
  const dataKey = newDataKey();
  const createdAt = Date.now();
  const copies: WrappedKey[] = [
    { id, kekId: keys.provider.id, wrapped: await keys.provider.wrap(dataKey), createdAt },
  ];
  if (target.id !== keys.provider.id) {
    copies.push({ id, kekId: target.id, wrapped: await target.wrap(dataKey), createdAt });
    // Old data keys get a copy under the new KEK too: until the last old value is re-sealed,
    // a process started with the new KEK must read them.
    for (const [oldId, key] of await unwrapKeys(keys.provider, state.keys)) {
      copies.push({ id: oldId, kekId: target.id, wrapped: await target.wrap(key), createdAt });
    }
  }
  await keys.table.add(copies, id);
  await keys.reload();
}

async function resealAll(keys: StoreKeys, options: RekeyOptions): Promise<number> {
  const batch = Math.max(1, options.batchSize ?? 100);
  const pause = options.pauseMs ?? 10;
  let resealed = 0;
  for (;;) {
    options.signal?.throwIfAborted();
    const done = await keys.table.reseal(batch);
    if (done === 0) return resealed;
    resealed += done;
    options.onProgress?.({ resealed });
    if (pause > 0) await delay(pause);
  }
}

export interface KeyRotationStatus {
  /** The data key new values are sealed with. */
  activeDataKey: string;
  /** Every data key still in the store; more than one while a rotation is unfinished. */
  dataKeys: string[];
  /** Every KEK that wraps one; more than one until a KEK change is finished. */
  keyEncryptionKeys: string[];
}

/** What `rekeyStore` would still have to finish (for doctor, a service's health check). */
export async function keyRotationStatus(store: CredentialStore): Promise<KeyRotationStatus> {
  const state = await storeKeysOf(store).table.read();
  return {
    activeDataKey: state.active ?? '',
    dataKeys: [...new Set(state.keys.map((k) => k.id))],
    keyEncryptionKeys: [...new Set(state.keys.map((k) => k.kekId))],
  };
}
