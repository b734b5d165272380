/**
 * The upstream links of one instance: at most one per (subject, upstream), made on first use,
 * closed after a while unused, and never more than a bound, so memory and upstream sessions
 * stay proportional to the users active now rather than to every user ever served.
 */
import type { CredentialManager } from '../lifecycle/manager.js';
import type { Logger } from '../log.js';
import type { McpCredentials } from '../mcp/credentials.js';
import { EventType, type LifecycleEvent } from '../store/contract.js';
import { UpstreamLink } from './mcp-link.js';

export interface PoolOptions {
  manager: CredentialManager;
  logger: Logger;
  fetch?: typeof fetch | undefined;
  /** Links kept open at most; past it the least recently used idle one is closed. Default 1000. */
  maxLinks?: number;
  /** A link unused this long is closed (its upstream session ended). Default 10 minutes. */
  idleMs?: number;
  /** Deadline of each request to an upstream, in ms. Default 5 minutes. */
  requestTimeoutMs?: number;
}

export const DEFAULT_MAX_LINKS = 1000;
export const DEFAULT_LINK_IDLE_MS = 10 * 60_000;

export class LinkPool {
  readonly #links = new Map<string, UpstreamLink>();
  readonly #options: PoolOptions;
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: PoolOptions) {
    this.#options = options;
    const idleMs = options.idleMs ?? DEFAULT_LINK_IDLE_MS;
    this.#sweeper = setInterval(() => this.#sweep(idleMs), Math.min(idleMs, 60_000));
    this.#sweeper.unref();
  }

  get size(): number {
    return this.#links.size;
  }

  /** The link of `subject` to `server`, made if there is none. */
  link(subject: string, server: string): UpstreamLink {
    const key = JSON.stringify([subject, server]);
    let link = this.#links.get(key);
    if (link !== undefined) {
      // Re-inserted so the Map's order stays least recently used first.
      this.#links.delete(key);
    } else {
      link = new UpstreamLink({
        server,
        subject,
        credentials: subjectCredentials(this.#options.manager, subject),
        logger: this.#options.logger.child({ subject }),
        fetch: this.#options.fetch,
        requestTimeoutMs: this.#options.requestTimeoutMs,
      });
      this.#trim((this.#options.maxLinks ?? DEFAULT_MAX_LINKS) - 1);
    }
    this.#links.set(key, link);
    link.lastUsed = Date.now();
    return link;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    const links = [...this.#links.values()];
    this.#links.clear();
    await Promise.allSettled(links.map((l) => l.close()));
  }

  /** Close idle links, oldest first, until at most `keep` remain. Busy links stay. */
  #trim(keep: number): void {
    for (const [key, link] of this.#links) {
      if (this.#links.size <= keep) return;
      if (link.busy) continue;
      this.#links.delete(key);
      void link.close().catch(() => undefined);
    }
  }

  #sweep(idleMs: number): void {
    const cutoff = Date.now() - idleMs;
    for (const [key, link] of this.#links) {
      if (link.busy || link.lastUsed > cutoff) continue;
      this.#links.delete(key);
      void link.close().catch(() => undefined);
    }
  }
}

/**
 * The manager as one subject sees it. The connection follows credential events to drop or
 * renew its session; unfiltered, one user's logout would stop every user's link to that
 * server. A reconnect addressed to every server and subject still applies.
 */
export function subjectCredentials(manager: CredentialManager, subject: string): McpCredentials {
  const concerns = (event: LifecycleEvent): boolean =>
    event.subject === subject || (event.type === EventType.RECONNECT && event.server === '');
  const wrapped = new Map<(event: LifecycleEvent) => void, (event: LifecycleEvent) => void>();
  return {
    getToken: (server, options) => manager.getToken(server, { ...options, subject }),
    getAccessToken: (server, options) => manager.getAccessToken(server, { ...options, subject }),
    on(_event, listener) {
      const filtered = (event: LifecycleEvent): void => {
        if (concerns(event)) listener(event);
      };
      wrapped.set(listener, filtered);
      manager.on('event', filtered);
    },
    off(_event, listener) {
      const filtered = wrapped.get(listener);
      wrapped.delete(listener);
      if (filtered !== undefined) manager.off('event', filtered);
    },
    lastEventId: () => manager.lastEventId(),
    readEvents: async (query) => (await manager.readEvents(query)).filter(concerns),
  };
}
