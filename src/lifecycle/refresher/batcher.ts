interface Pending<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: items added while a flush is in flight (or in the same turn of the event
 * loop) go out together in the next flush, up to `max` at a time. Nothing waits on a timer:
 * a lone item is flushed on the next turn, so batching costs latency only under load, where
 * it saves a round trip per item. A flush settles each item on its own; one that throws fails
 * each of its items.
 */
export class Batcher<I, O> {
  readonly #flush: (items: I[]) => Promise<PromiseSettledResult<O>[]>;
  readonly #max: number;
  #queue: Pending<I, O>[] = [];
  #running = false;

  constructor(flush: (items: I[]) => Promise<PromiseSettledResult<O>[]>, max: number) {
    this.#flush = flush;
    this.#max = Math.max(1, Math.floor(max));
  }

  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (this.#running) return;
      this.#running = true;
      setImmediate(() => void this.#drain());
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#max);
      try {
        const out = await this.#flush(batch.map((p) => p.item));
        batch.forEach((p, i) => {
          const result = out[i];
          if (result?.status === 'fulfilled') p.resolve(result.value);
          else p.reject(result === undefined ? new Error('the batch lost an item') : result.reason);
        });
      } catch (error) {
        for (const p of batch) p.reject(error);
      }
    }
    this.#running = false;
  }
}
