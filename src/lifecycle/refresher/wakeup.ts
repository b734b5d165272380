/**
 * The refresher's one timer: sleep until a moment, or until something wakes it (a store
 * change, a finished refresh, close). A wake-up that arrives while the loop is busy is kept,
 * so the next sleep returns at once instead of missing it.
 */
export class Wakeup {
  #pending = false;
  #resolve: (() => void) | undefined;

  wake(): void {
    if (this.#resolve === undefined) {
      this.#pending = true;
      return;
    }
    this.#resolve();
  }

  sleepUntil(at: number): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return new Promise((resolve) => setImmediate(resolve));
    }
    const delay = Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1));
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#resolve = undefined;
        resolve();
      };
      const timer = setTimeout(done, delay);
      this.#resolve = done;
    });
  }
}
