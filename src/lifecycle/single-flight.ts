/**
 * In-process single-flight: concurrent callers with the same key share one promise. The
 * entry is removed when the promise settles, so a later call starts fresh. The key must
 * include every input that shapes the request (MSAL learned this the hard way with
 * `resource`), which is why callers build it from the full credential key.
 */
export class SingleFlight<T> {
  readonly #inflight = new Map<string, Promise<T>>();

  /** The promise for `key` if one is running. */
  current(key: string): Promise<T> | undefined {
    return this.#inflight.get(key);
  }

  run(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.#inflight.get(key);
    if (running !== undefined) return running;
    const promise = work().finally(() => {
      if (this.#inflight.get(key) === promise) this.#inflight.delete(key);
    });
    this.#inflight.set(key, promise);
    return promise;
  }

  /** Resolves once every promise running now has settled, however it settled. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#inflight.values()]);
  }

  get size(): number {
    return this.#inflight.size;
  }
}
