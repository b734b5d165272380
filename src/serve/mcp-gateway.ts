/**
 * What the MCP endpoints keep per instance: the upstream links, the host sessions, open GET
 * streams and requests in flight (for cancellation).
 *
 * Host sessions are light on purpose: the upstream session belongs to the link, so a host
 * session only remembers what the host declared (URL elicitation) and where its GET
 * streams are. The session id carries that one trait too, so a host whose next request
 * reaches another instance behind the load balancer is served there without a new
 * handshake.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

import type { UpstreamConfig } from './config.js';
import type { UpstreamLink } from './mcp-link.js';
import type { HostTraits } from './mcp-login.js';
import { LinkPool, type PoolOptions } from './mcp-pool.js';

/** Who a call is for, once authenticated. */
export interface McpCaller {
  subject: string;
  upstream: UpstreamConfig;
}

/** Host sessions remembered per instance; the oldest is forgotten past it (its id still works). */
const MAX_SESSIONS = 10_000;

export interface HostSession extends McpCaller {
  traits: HostTraits;
  streams: Set<ServerResponse>;
}

/** What the MCP endpoints keep per instance: the links, host sessions and open streams. */
export class McpGateway {
  readonly links: LinkPool;
  readonly #sessions = new Map<string, HostSession>();
  /** Host request (session, id) → the link and gateway id it went out under, for cancellation. */
  readonly #inflight = new Map<string, { link: UpstreamLink; gatewayId: string }>();
  /** Every open GET stream, ended at shutdown so that the server can close. */
  readonly streams = new Set<ServerResponse>();

  constructor(options: PoolOptions) {
    this.links = new LinkPool(options);
  }

  open(caller: McpCaller, traits: HostTraits): string {
    const id = `${randomBytes(16).toString('base64url')}.${traits.urlElicitation ? 'u' : 'p'}`;
    if (this.#sessions.size >= MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest !== undefined) this.#end(oldest);
    }
    this.#sessions.set(id, { ...caller, traits, streams: new Set() });
    return id;
  }

  /**
   * The session a host names, if it is this caller's. An id this instance does not know (made
   * by another instance, or before a restart) is honoured with the trait it carries; one
   * known here for another subject or upstream is not.
   */
  session(id: string | undefined, caller: McpCaller): HostSession | undefined | 'foreign' {
    if (id === undefined) return undefined;
    const known = this.#sessions.get(id);
    if (known !== undefined) {
      return known.subject === caller.subject && known.upstream.id === caller.upstream.id ? known : 'foreign';
    }
    if (!/^[A-Za-z0-9_-]{22}\.[up]$/.test(id)) return 'foreign';
    const session = {
      ...caller,
      traits: { urlElicitation: id.endsWith('.u'), modern: false },
      streams: new Set<ServerResponse>(),
    };
    this.#sessions.set(id, session);
    return session;
  }

  end(id: string): void {
    this.#end(id);
  }

  track(key: string, entry: { link: UpstreamLink; gatewayId: string } | undefined): void {
    if (entry === undefined) this.#inflight.delete(key);
    else this.#inflight.set(key, entry);
  }

  cancel(key: string): void {
    const entry = this.#inflight.get(key);
    if (entry !== undefined) entry.link.cancel(entry.gatewayId);
  }

  /** Shutdown, first step: end the GET streams (they never end by themselves). */
  endStreams(): void {
    for (const stream of this.streams) stream.end();
  }

  /** Shutdown, last step (after requests in flight are answered): end the upstream sessions. */
  async close(): Promise<void> {
    this.endStreams();
    this.#sessions.clear();
    await this.links.close();
  }

  #end(id: string): void {
    const session = this.#sessions.get(id);
    this.#sessions.delete(id);
    for (const stream of session?.streams ?? []) stream.end();
  }
}
