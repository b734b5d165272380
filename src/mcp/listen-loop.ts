/**
 * The Streamable HTTP GET stream that carries server-initiated messages (list changes,
 * resource updates, server requests), kept open with backoff for as long as its session
 * lives. A stream the server keeps closing at once, or one carrying garbage, means the
 * session is not to be trusted: a new one is made.
 */
import { isLatchkeyError } from '../errors.js';
import { sleep } from '../lifecycle/lease.js';
import type { Logger } from '../log.js';
import { retryDelayMs, SESSION_EXPIRED } from './recovery.js';
import { MessageTooLargeError } from './sse.js';
import type { Deliver, StreamableHttpWire, StreamProgress } from './streamable-http.js';
import { HttpStatusError, StreamBrokenError } from './wire-errors.js';

/** A stream that lived this long was healthy: its failure count starts afresh. */
const HEALTHY_MS = 10_000;

export interface ListenHooks {
  /** The session the loop belongs to; the loop ends when it changes. */
  epoch(): number;
  /** Logged out: nothing to listen for until a new login. */
  loggedOut(): boolean;
  /** The session is broken: make a new one (which starts a new loop). */
  rehandshake(epoch: number, reason: string): void;
}

export interface ListenOptions {
  http: StreamableHttpWire;
  deliver: Deliver;
  log: Logger;
  maxFailures: number;
  hooks: ListenHooks;
}

export class ListenLoop {
  readonly #o: ListenOptions;
  #abort: AbortController | undefined;

  constructor(options: ListenOptions) {
    this.#o = options;
  }

  /** Open the stream unless one is open already. */
  start(): void {
    if (this.#abort !== undefined) return;
    const abort = new AbortController();
    this.#abort = abort;
    void this.#run(abort.signal, this.#o.hooks.epoch()).finally(() => {
      if (this.#abort === abort) this.#abort = undefined;
    });
  }

  stop(): void {
    this.#abort?.abort();
    this.#abort = undefined;
  }

  async #run(signal: AbortSignal, epoch: number): Promise<void> {
    const { hooks } = this.#o;
    const progress: StreamProgress = {};
    let failures = 0;
    while (!signal.aborted && epoch === hooks.epoch() && !hooks.loggedOut()) {
      const opened = Date.now();
      try {
        const outcome = await this.#o.http.listen(this.#o.deliver, signal, progress);
        if (outcome === 'unsupported') return;
        // A server closing it at once is not healthy.
        failures = Date.now() - opened > HEALTHY_MS ? 0 : failures + 1;
      } catch (error) {
        if (signal.aborted) return;
        const verdict = this.#judge(error, failures + 1);
        if (verdict === 'stop') return;
        if (verdict !== 'again') {
          hooks.rehandshake(epoch, verdict);
          return;
        }
        failures++;
      }
      await sleep(retryDelayMs(failures, progress.retryMs), signal).catch(() => undefined);
    }
  }

  /** After a failed stream: open it again, stop, or renew the session (the reason). */
  #judge(error: unknown, failures: number): 'again' | 'stop' | string {
    if (error instanceof HttpStatusError && error.sessionExpired) return SESSION_EXPIRED;
    if (error instanceof MessageTooLargeError) {
      // An oversized event only costs this stream, which is opened again.
      this.#o.log.warn(`the server's listen stream was dropped: ${error.message}`);
    } else if (isLatchkeyError(error)) {
      // Requests will surface a credential failure to the host.
      return 'stop';
    }
    if ((error instanceof StreamBrokenError && error.garbage) || failures >= this.#o.maxFailures) {
      return 'the listen stream kept failing';
    }
    return 'again';
  }
}
