import type pg from 'pg';

import type { LifecycleEvent } from './contract.js';
import { eventsAfter, maxEventId, EVENTS_CHANNEL } from './postgres-events.js';
import type { PgConnection } from './postgres-connection.js';

export interface PgEventFeedOptions {
  /** Opens the dedicated LISTEN connection (not from the pool: it is held for good). */
  connect: () => Promise<pg.Client>;
  /** A re-read of the table now and then while anyone watches, should a notice be lost. */
  safetyPollMs: number;
  /** Longest wait between LISTEN reconnection attempts. */
  maxReconnectDelayMs: number;
}

interface Watcher {
  listener: (events: LifecycleEvent[]) => void;
  /** The newest id this watcher has been given, or that existed when it subscribed. */
  after: number;
}

const READ_BATCH = 1000;

/**
 * Change notices for one Postgres store: one LISTEN connection, opened with the store, and
 * the events table as the source of truth. A notice carries only the new event's id; it
 * moves the store's high-water mark and, while anyone watches, triggers a read of everything
 * after the feed's cursor, which is then handed to each watcher once, in id order.
 *
 * When the LISTEN connection is lost, the feed reconnects with backoff and re-reads from its
 * cursor, so notices missed while disconnected cost latency, never events.
 */
export class PgEventFeed {
  readonly #conn: PgConnection;
  readonly #options: PgEventFeedOptions;
  readonly #watchers = new Set<Watcher>();
  #client: pg.Client | undefined;
  /** The newest event id this store knows exists (from notices and its own commits). */
  #highWater = 0;
  /** The newest id read from the table and delivered. */
  #cursor = 0;
  #reading = false;
  #dirty = false;
  #stopped = false;
  #reconnectDelay = 50;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #safetyTimer: NodeJS.Timeout | undefined;
  /** How many times the LISTEN connection was re-established (for tests and doctor). */
  reconnects = 0;

  constructor(conn: PgConnection, options: PgEventFeedOptions) {
    this.#conn = conn;
    this.#options = options;
  }

  /** Open the LISTEN connection; events committed after this resolves are all noticed. */
  async start(): Promise<void> {
    await this.#listen();
    const newest = await maxEventId(this.#conn.pool);
    this.#highWater = Math.max(this.#highWater, newest);
    this.#cursor = this.#highWater;
    this.#safetyTimer = setInterval(() => this.#wake(), this.#options.safetyPollMs);
    this.#safetyTimer.unref();
  }

  subscribe(listener: (events: LifecycleEvent[]) => void): () => void {
    this.#conn.assertOpen();
    const watcher: Watcher = { listener, after: this.#highWater };
    if (this.#watchers.size === 0) this.#cursor = Math.max(this.#cursor, this.#highWater);
    this.#watchers.add(watcher);
    return () => {
      this.#watchers.delete(watcher);
    };
  }

  /** This store committed event `id`: a watcher subscribing from now on starts after it. */
  saw(id: number): void {
    if (id > this.#highWater) this.#highWater = id;
    this.#wake();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watchers.clear();
    clearInterval(this.#safetyTimer);
    clearTimeout(this.#reconnectTimer);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }

  async #listen(): Promise<void> {
    const client = await this.#options.connect();
    client.on('notification', (message) => {
      const id = Number(message.payload);
      if (Number.isSafeInteger(id) && id > this.#highWater) this.#highWater = id;
      this.#wake();
    });
    const lost = (): void => this.#lost(client);
    client.on('error', lost);
    client.on('end', lost);
    try {
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
    } catch (error) {
      client.removeListener('end', lost);
      await client.end().catch(() => undefined);
      throw error;
    }
    this.#client = client;
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client || this.#stopped) return;
    this.#client = undefined;
    client.end().catch(() => undefined);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#stopped) return;
    const delay = this.#reconnectDelay;
    this.#reconnectDelay = Math.min(delay * 2, this.#options.maxReconnectDelayMs);
    this.#reconnectTimer = setTimeout(() => void this.#reconnect(), delay);
    this.#reconnectTimer.unref();
  }

  async #reconnect(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#listen();
    } catch {
      this.#scheduleReconnect();
      return;
    }
    if (this.#stopped) {
      await this.stop();
      return;
    }
    this.#reconnectDelay = 50;
    this.reconnects++;
    // Whatever was appended while we were deaf is in the table after our cursor.
    try {
      this.#highWater = Math.max(this.#highWater, await maxEventId(this.#conn.pool));
    } catch {
      // the safety poll retries
    }
    this.#wake();
  }

  #wake(): void {
    if (this.#stopped) return;
    if (this.#watchers.size === 0) {
      this.#cursor = Math.max(this.#cursor, this.#highWater);
      return;
    }
    void this.#drain();
  }

  async #drain(): Promise<void> {
    if (this.#reading) {
      this.#dirty = true;
      return;
    }
    this.#reading = true;
    try {
      do {
        this.#dirty = false;
        const events = await eventsAfter(this.#conn.pool, this.#cursor, undefined, READ_BATCH);
        if (this.#stopped) return;
        const last = events.at(-1);
        if (last === undefined) continue;
        this.#cursor = last.id;
        if (last.id > this.#highWater) this.#highWater = last.id;
        this.#deliver(events);
        if (events.length === READ_BATCH) this.#dirty = true;
      } while (this.#dirty && !this.#stopped);
    } catch {
      // The store is briefly unreachable: the next notice or the safety poll reads again.
    } finally {
      this.#reading = false;
    }
  }

  #deliver(events: LifecycleEvent[]): void {
    for (const watcher of [...this.#watchers]) {
      // A listener may unsubscribe another one: it gets nothing more, even from this batch.
      if (!this.#watchers.has(watcher)) continue;
      const fresh = events.filter((event) => event.id > watcher.after);
      const last = fresh.at(-1);
      if (last === undefined) continue;
      watcher.after = last.id;
      try {
        watcher.listener(fresh.map((event) => structuredClone(event)));
      } catch {
        // One listener's failure must not starve the others.
      }
    }
  }
}
