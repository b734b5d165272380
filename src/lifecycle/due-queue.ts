/** Something a DueQueue holds. The queue owns both fields; the item only carries them. */
export interface Schedulable {
  /** When the item is due, epoch ms. */
  dueAt: number;
  /** Position in the heap; -1 when not queued. */
  queueIndex: number;
}

/** setTimeout fires at once for delays above 2^31 - 1 ms (about 24.8 days). */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;
/** Items fired per timer callback, so a burst of due items never blocks the event loop long. */
const FIRE_BATCH = 1000;

export interface DueQueueOptions<T> {
  /** Called once per due item, after it left the queue (it may schedule itself again). */
  fire(item: T): void;
  /** While this answers false, due items wait in the queue (see `wake`). Default: always ready. */
  ready?(): boolean;
}

/**
 * Items ordered by due time (a binary min-heap) behind one timer, armed for the earliest.
 * It replaces a timer per item: a process holding 100k credentials has one timer, and
 * moving or dropping an item is O(log n). The timer is `unref()`ed so it never keeps a
 * process alive.
 */
export class DueQueue<T extends Schedulable> {
  readonly #heap: T[] = [];
  readonly #o: DueQueueOptions<T>;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #closed = false;

  constructor(options: DueQueueOptions<T>) {
    this.#o = options;
  }

  get size(): number {
    return this.#heap.length;
  }

  /** Queue `item` for `at`, or move it there if queued. A non-finite `at` unqueues it. */
  schedule(item: T, at: number): void {
    if (this.#closed) return;
    if (!Number.isFinite(at)) {
      this.remove(item);
      return;
    }
    const earlier = at < item.dueAt;
    item.dueAt = at;
    if (item.queueIndex < 0) {
      item.queueIndex = this.#heap.length;
      this.#heap.push(item);
      this.#up(item.queueIndex);
    } else if (earlier) this.#up(item.queueIndex);
    else this.#down(item.queueIndex);
    this.#arm();
  }

  /** Unqueue `item` if queued. The timer is left alone: firing early only re-arms it. */
  remove(item: T): void {
    const at = item.queueIndex;
    if (at < 0 || this.#heap[at] !== item) return;
    const last = this.#heap.pop();
    item.queueIndex = -1;
    if (last === undefined || last === item) return;
    this.#heap[at] = last;
    last.queueIndex = at;
    this.#up(at);
    this.#down(last.queueIndex);
  }

  /** Look again now: `ready()` may have turned true. */
  wake(): void {
    const first = this.#heap[0];
    if (first !== undefined && first.dueAt <= Date.now()) this.#arm(true);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const item of this.#heap) item.queueIndex = -1;
    this.#heap.length = 0;
  }

  #run(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    for (let fired = 0; fired < FIRE_BATCH; fired++) {
      const first = this.#heap[0];
      if (first === undefined || first.dueAt > now || this.#o.ready?.() === false) {
        this.#arm();
        return;
      }
      this.remove(first);
      this.#o.fire(first);
    }
    this.#arm(true);
  }

  /** Arm the timer for the earliest item unless one fires by then already. */
  #arm(now = false): void {
    const first = this.#heap[0];
    if (this.#closed || first === undefined) return;
    // Waiting on ready(): the next wake() or schedule() looks again.
    if (!now && first.dueAt <= Date.now() && this.#o.ready?.() === false) return;
    const at = now ? Date.now() : first.dueAt;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#run(), Math.min(MAX_TIMER_DELAY_MS, Math.max(0, at - Date.now())));
    this.#timer.unref();
  }

  #up(index: number): void {
    const item = this.#heap[index];
    if (item === undefined) return;
    let at = index;
    while (at > 0) {
      const parentAt = (at - 1) >> 1;
      const parent = this.#heap[parentAt];
      if (parent === undefined || parent.dueAt <= item.dueAt) break;
      this.#place(parent, at);
      at = parentAt;
    }
    this.#place(item, at);
  }

  #down(index: number): void {
    const item = this.#heap[index];
    if (item === undefined) return;
    let at = index;
    for (;;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let child = left;
      const r = this.#heap[right];
      const l = this.#heap[left];
      if (r !== undefined && l !== undefined && r.dueAt < l.dueAt) child = right;
      const next = this.#heap[child];
      if (next === undefined || next.dueAt >= item.dueAt) break;
      this.#place(next, at);
      at = child;
    }
    this.#place(item, at);
  }

  #place(item: T, at: number): void {
    this.#heap[at] = item;
    item.queueIndex = at;
  }
}
