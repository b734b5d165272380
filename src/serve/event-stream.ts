import type { IncomingMessage, ServerResponse } from 'node:http';

import type { CredentialManager } from '../lifecycle/manager.js';
import type { EventLog, LifecycleEvent } from '../store/contract.js';
import type { UpstreamConfig } from './config.js';
import { type ServeEvent, serveEventOf, sseMessage, upstreamIndex } from './events.js';
import { inScope } from './scopes.js';

export interface EventStreamOptions {
  /** A comment line this often keeps proxies and load balancers from closing an idle stream. Default 15 s. */
  heartbeatMs?: number;
  /**
   * Bytes a slow client may leave unread before its stream is closed. It reconnects with
   * `Last-Event-ID` and loses nothing; the service does not hold an unbounded queue for it.
   * Default 1 MiB.
   */
  maxBufferedBytes?: number;
}

const DEFAULT_HEARTBEAT_MS = 15_000;
const DEFAULT_MAX_BUFFERED = 1024 * 1024;
/** Events read per query while catching a resuming client up. */
const RESUME_PAGE = 500;

interface Client {
  res: ServerResponse;
  subject: string | undefined;
  /** The app key's subject prefix (scopes.ts): events of other subjects are never sent. */
  prefix: string | undefined;
  /** The newest id written to this client; live events at or below it were sent by the catch-up. */
  lastId: number;
  /** Live events that arrived while the catch-up was reading the log. */
  pending: ServeEvent[] | undefined;
  /** The buffer bound was checked in this burst (reset on the next turn of the event loop). */
  checked: boolean;
}

/**
 * Every open `GET /v1/events` stream of one instance, fed by the manager's store watch (one
 * subscription for the whole process, however many streams are open).
 */
export class EventStreams {
  readonly #clients = new Set<Client>();
  readonly #store: EventLog;
  readonly #upstreams: ReadonlyMap<string, UpstreamConfig>;
  readonly #publicUrl: string;
  readonly #heartbeatMs: number;
  readonly #maxBuffered: number;
  readonly #timer: NodeJS.Timeout;
  readonly #onEvent = (event: LifecycleEvent): void => this.#publish(event);
  readonly #manager: CredentialManager;
  #closed = false;

  constructor(
    manager: CredentialManager,
    upstreams: Iterable<UpstreamConfig>,
    publicUrl: string,
    options: EventStreamOptions = {},
  ) {
    this.#manager = manager;
    this.#store = manager.store;
    this.#upstreams = upstreamIndex(upstreams);
    this.#publicUrl = publicUrl;
    this.#heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.#maxBuffered = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED;
    manager.on('event', this.#onEvent);
    this.#timer = setInterval(() => this.#heartbeat(), this.#heartbeatMs);
    this.#timer.unref();
  }

  /** Open streams, for /metrics. */
  get size(): number {
    return this.#clients.size;
  }

  /**
   * Answer `GET /v1/events`: headers now, then the events after `Last-Event-ID` from the log
   * (when given), then live events until the client or the service goes away. With `prefix`
   * (a scoped app key), only events of subjects starting with it are sent, live or resumed.
   */
  async open(
    req: IncomingMessage,
    res: ServerResponse,
    subject: string | undefined,
    prefix?: string | undefined,
  ): Promise<void> {
    if (this.#closed) {
      res.writeHead(503, { 'content-type': 'text/plain', connection: 'close' }).end('shutting down\n');
      return;
    }
    const resumeFrom = lastEventId(req);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // nginx: do not buffer this response (docs/serve.md, reverse proxy).
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    res.write(`retry: 2000\n\n`);
    const client: Client = {
      res,
      subject,
      prefix,
      lastId: resumeFrom ?? 0,
      pending: resumeFrom === undefined ? undefined : [],
      checked: false,
    };
    this.#clients.add(client);
    res.on('close', () => this.#clients.delete(client));
    if (resumeFrom !== undefined) await this.#catchUp(client, resumeFrom);
  }

  /** End every stream (shutdown); clients reconnect to another instance with Last-Event-ID. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#manager.off('event', this.#onEvent);
    for (const client of this.#clients) client.res.end();
    this.#clients.clear();
  }

  /** Live events are held back while the log is read, so the client sees one ordered sequence. */
  async #catchUp(client: Client, after: number): Promise<void> {
    try {
      // An id from the future (the store was replaced, or the id is made up) would otherwise
      // hold back every live event up to it: resume from the newest instead.
      const newest = await this.#store.lastEventId();
      let cursor = Math.min(after, newest);
      client.lastId = Math.min(client.lastId, cursor);
      for (;;) {
        const page = await this.#store.readEvents({ afterId: cursor, limit: RESUME_PAGE });
        for (const event of page) this.#send(client, event);
        const last = page.at(-1);
        if (last === undefined || page.length < RESUME_PAGE) break;
        cursor = last.id;
      }
    } catch {
      // The store is unreachable: end the stream; the client's reconnect retries the resume.
      client.res.end();
      return;
    }
    const held = client.pending ?? [];
    client.pending = undefined;
    for (const event of held) this.#write(client, event);
  }

  #publish(event: LifecycleEvent): void {
    const view = serveEventOf(event, this.#upstreams, this.#publicUrl);
    if (view === undefined) return;
    for (const client of this.#clients) {
      if (client.pending !== undefined) client.pending.push(view);
      else this.#write(client, view);
    }
  }

  #send(client: Client, event: LifecycleEvent): void {
    const view = serveEventOf(event, this.#upstreams, this.#publicUrl);
    if (view !== undefined) this.#write(client, view);
    else client.lastId = Math.max(client.lastId, event.id);
  }

  #write(client: Client, event: ServeEvent): void {
    if (event.id <= client.lastId) return;
    client.lastId = event.id;
    if (client.subject !== undefined && event.subject !== client.subject) return;
    if (!inScope(client.prefix, event.subject)) return;
    this.#push(client, sseMessage(event));
  }

  #heartbeat(): void {
    for (const client of this.#clients) this.#push(client, `: keepalive\n\n`);
  }

  /**
   * A client that stopped reading past the bound is closed, not buffered for without end.
   * Node corks a response's writes within one tick, so a burst of events sits in
   * `writableLength` even for a client that reads fine; the bound is therefore checked once
   * per burst, at its first write, when the length is only what earlier bursts left unread.
   */
  #push(client: Client, text: string): void {
    if (!client.checked) {
      client.checked = true;
      setImmediate(() => (client.checked = false));
      if (client.res.writableLength > this.#maxBuffered) {
        this.#clients.delete(client);
        client.res.destroy();
        return;
      }
    }
    client.res.write(text);
  }
}

/** `Last-Event-ID` (sent by EventSource on reconnect), or `?last_event_id=` for clients that cannot set headers. */
function lastEventId(req: IncomingMessage): number | undefined {
  const header = req.headers['last-event-id'];
  const query = new URL(req.url ?? '/', 'http://serve.invalid').searchParams.get('last_event_id');
  const text = (typeof header === 'string' ? header : undefined) ?? query ?? undefined;
  if (text === undefined || text.trim() === '') return undefined;
  const id = Number(text);
  return Number.isSafeInteger(id) && id >= 0 ? id : undefined;
}
