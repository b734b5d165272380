import type { CredentialKey } from '../../credential/key.js';
import type { CredentialStore, CredentialWrite, WriteResult } from '../../store/contract.js';
import type { RefreshStore } from '../refresh.js';
import { Batcher } from './batcher.js';

/**
 * The refresher's view of the store: token writes of concurrent refreshes are group-committed
 * with `writeCredentials` (one transaction for many; each still generation- and lease-checked
 * on its own), and lease releases with `releaseLeases`. Everything else goes to the store.
 */
export class BatchedStore {
  readonly store: RefreshStore;
  readonly #writes: Batcher<CredentialWrite, WriteResult>;
  readonly #releases: Batcher<CredentialKey, undefined>;

  constructor(store: CredentialStore, owner: string, max: number) {
    this.#writes = new Batcher((writes) => writeAll(store, writes), max);
    this.#releases = new Batcher<CredentialKey, undefined>(async (keys) => {
      await store.releaseLeases(keys, owner);
      return keys.map(() => ({ status: 'fulfilled', value: undefined }));
    }, max);
    const writes = this.#writes;
    const writeCredential: RefreshStore['writeCredential'] = (record, condition, event) =>
      writes.add({ record, condition, event });
    this.store = new Proxy(store, {
      get(target, prop) {
        if (prop === 'writeCredential') return writeCredential;
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** Release this holder's lease on `key`, with the other releases of the moment. */
  release(key: CredentialKey): Promise<undefined> {
    return this.#releases.add(key);
  }
}

/**
 * One transaction for the batch. Should it fail as a whole (a deadlock victim, a dropped
 * connection), each write is tried alone: the AS has already rotated these tokens, and one
 * write's trouble must not lose the others'. Retrying is safe: every write is
 * generation-checked, so one that did commit is refused the second time, not applied twice.
 */
async function writeAll(
  store: CredentialStore,
  writes: CredentialWrite[],
): Promise<PromiseSettledResult<WriteResult>[]> {
  try {
    const results = await store.writeCredentials(writes);
    return results.map((value) => ({ status: 'fulfilled', value }));
  } catch (error) {
    if (writes.length === 1) return [{ status: 'rejected', reason: error }];
    return Promise.allSettled(writes.map((w) => store.writeCredential(w.record, w.condition, w.event)));
  }
}
