/**
 * A reverse proxy on 127.0.0.1 that misbehaves on request. Put it in front of the AS (or
 * the MCP server) and every failure a real network and a real AS produce can be staged
 * exactly: outages, rate limits, hangs, resets, responses lost after the server acted,
 * malformed bodies, broken event streams, and requests parked until the test lets them go.
 *
 * Without a matching fault it is transparent: method, path, query and headers (Host
 * included, so the target builds its URLs with the proxy's origin) pass unchanged, and
 * bodies stream through in both directions (SSE is never buffered).
 */
import { createServer, request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';

import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';

export type FaultAction =
  /** Answer with this status without forwarding (e.g. 503, 500). */
  | { type: 'status'; status: number; body?: string; headers?: Record<string, string> }
  /** 429 with `Retry-After: retryAfter` (seconds) without forwarding. */
  | { type: 'rate-limit'; retryAfter: number; body?: string }
  /** Accept the request and never answer; the connection is dropped on clear() or close(). */
  | { type: 'timeout' }
  /** Destroy the connection at once, without a response. */
  | { type: 'drop' }
  /**
   * Forward, let the target finish processing and answer, then destroy the client's
   * connection without sending that answer: the request took effect but the reply was lost.
   */
  | { type: 'lost-response' }
  /**
   * Forward, let the target finish processing, then never answer: the connection hangs until
   * clear() or close(). The request took effect and its client is still waiting, as a process
   * is when it is killed with its refresh at the AS.
   */
  | { type: 'swallow-response' }
  /** Answer (default 200, application/json) with a malformed body, e.g. truncated JSON. */
  | { type: 'garbage'; status?: number; body?: string; contentType?: string }
  /**
   * Forward and stream the response, but after `afterEvents` complete SSE events (default 1)
   * inject `payload` (default: an event with invalid UTF-8 and invalid JSON). `then`: keep
   * forwarding (`continue`, default), end the stream cleanly (`end`) or reset it (`destroy`).
   * If the stream ends first, the payload is injected at its end.
   */
  | {
      type: 'corrupt-stream';
      afterEvents?: number;
      payload?: string | Uint8Array;
      then?: 'continue' | 'end' | 'destroy';
    }
  /** Park the request before it reaches the target until handle.release(). */
  | { type: 'hold' }
  /** Forward after `ms` milliseconds. */
  | { type: 'delay'; ms: number };

export interface SeenRequest {
  method: string;
  /** Path and query as received. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Epoch ms of arrival. */
  at: number;
  /** The fault applied, if any. */
  fault?: FaultAction['type'];
}

export interface FaultRule {
  /** HTTP method to match, case-insensitive. Default: any. */
  method?: string;
  /**
   * Prefix of the request path (query ignored). Default: any. Beware that `/token` also
   * matches oidc-provider's `/token/revocation` and `/token/introspection`; set `exact`.
   */
  path?: string;
  /** Match `path` exactly instead of as a prefix. */
  exact?: boolean;
  /** Further condition on the request. */
  match?: (request: SeenRequest) => boolean;
  action: FaultAction;
  /** How many requests the rule applies to. Default: unlimited. */
  times?: number;
}

export interface FaultHandle {
  readonly rule: FaultRule;
  /** Requests this rule has taken so far. */
  readonly hits: number;
  /** Resolves when the first matching request arrives at the proxy. */
  readonly arrived: Promise<void>;
  /**
   * Resolves when the target has completely answered a request this rule forwarded
   * (lost-response, swallow-response, hold, delay, corrupt-stream): proof the target processed it.
   */
  readonly processed: Promise<void>;
  /** Requests of this rule the target has answered. */
  readonly processedCount: number;
  /** hold: forward the parked requests (those whose client is still there) and stop holding. */
  release(): void;
}

export interface FaultProxy {
  /** Base URL, `${origin}/`. */
  readonly url: string;
  readonly origin: string;
  readonly target: string | undefined;
  /** Where to forward (an origin). Requests before a target is set get 502. */
  setTarget(origin: string): void;
  /** Add a fault; rules are tried in the order they were added, first match wins. */
  inject(rule: FaultRule): FaultHandle;
  /** Remove one fault, or all of them. Held requests are released, hanging ones dropped. */
  clear(handle?: FaultHandle): void;
  /** Requests that reached the proxy, optionally only those whose path starts with the prefix. */
  seen(pathPrefix?: string): SeenRequest[];
  close(): Promise<void>;
}

/** Per-connection headers (RFC 9110 7.6.1) that a proxy must not pass along. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer']);

const DEFAULT_STREAM_GARBAGE = Buffer.concat([
  Buffer.from('event: message\ndata: {"jsonrpc":"2.0","id":'),
  Buffer.from([0xff, 0xfe, 0xfd]),
  Buffer.from(' not json at all\n\n'),
]);

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  /** True once the client's connection closed before we answered. */
  gone: boolean;
}

class Fault implements FaultHandle {
  hits = 0;
  processedCount = 0;
  released = false;
  readonly held: Exchange[] = [];
  readonly hanging: Exchange[] = [];
  readonly arrived: Promise<void>;
  readonly processed: Promise<void>;
  #arrived!: () => void;
  #processed!: () => void;

  constructor(
    readonly rule: FaultRule,
    private readonly forward: (exchange: Exchange, fault: Fault) => void,
  ) {
    this.arrived = new Promise((resolve) => (this.#arrived = resolve));
    this.processed = new Promise((resolve) => (this.#processed = resolve));
  }

  matches(request: SeenRequest, pathname: string): boolean {
    if (this.released || this.hits >= (this.rule.times ?? Infinity)) return false;
    if (this.rule.method !== undefined && this.rule.method.toUpperCase() !== request.method) return false;
    const { path, exact } = this.rule;
    if (path !== undefined && !(exact === true ? pathname === path : pathname.startsWith(path))) return false;
    return this.rule.match === undefined || this.rule.match(request);
  }

  take(): void {
    this.hits++;
    this.#arrived();
  }

  markProcessed(): void {
    this.processedCount++;
    this.#processed();
  }

  release(): void {
    this.released = true;
    for (const exchange of this.held.splice(0)) {
      if (!exchange.gone) this.forward(exchange, this);
    }
  }

  /** Called on clear/close: nothing stays parked or hanging. */
  retire(): void {
    this.release();
    for (const exchange of this.hanging.splice(0)) exchange.res.destroy();
  }
}

export async function startFaultProxy(targetOrigin?: string): Promise<FaultProxy> {
  let target = targetOrigin;
  const faults: Fault[] = [];
  const seen: SeenRequest[] = [];
  const upstreams = new Set<ClientRequest>();
  const timers = new Set<NodeJS.Timeout>();

  const server = createServer((req, res) => {
    const request: SeenRequest = {
      method: (req.method ?? 'GET').toUpperCase(),
      path: req.url ?? '/',
      headers: req.headers,
      at: Date.now(),
    };
    seen.push(request);
    const exchange: Exchange = { req, res, gone: false };
    res.on('close', () => {
      if (!res.writableFinished) exchange.gone = true;
    });
    const pathname = new URL(request.path, 'http://proxy.invalid').pathname;
    const fault = faults.find((f) => f.matches(request, pathname));
    if (fault === undefined) {
      forward(exchange);
      return;
    }
    fault.take();
    request.fault = fault.rule.action.type;
    apply(exchange, fault);
  });
  const sockets = trackSockets(server);
  const origin = await listenOnLoopback(server);

  function apply(exchange: Exchange, fault: Fault): void {
    const { req, res } = exchange;
    const action = fault.rule.action;
    switch (action.type) {
      case 'status':
        req.resume();
        res.writeHead(action.status, { 'content-type': 'text/plain', ...action.headers });
        res.end(action.body ?? `injected ${action.status}`);
        return;
      case 'rate-limit':
        req.resume();
        res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': String(action.retryAfter) });
        res.end(action.body ?? 'injected 429');
        return;
      case 'garbage':
        req.resume();
        res.writeHead(action.status ?? 200, { 'content-type': action.contentType ?? 'application/json' });
        res.end(action.body ?? '{"access_token":"trunc');
        return;
      case 'timeout':
        req.resume();
        fault.hanging.push(exchange);
        return;
      case 'drop':
        req.socket.destroy();
        return;
      case 'hold':
        fault.held.push(exchange);
        return;
      case 'delay': {
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (!exchange.gone) forward(exchange, fault);
        }, action.ms);
        timers.add(timer);
        return;
      }
      case 'lost-response':
      case 'swallow-response':
      case 'corrupt-stream':
        forward(exchange, fault);
        return;
    }
  }

  function forward(exchange: Exchange, fault?: Fault): void {
    const { req, res } = exchange;
    if (target === undefined) {
      req.resume();
      res.writeHead(502, { 'content-type': 'text/plain' }).end('fault proxy has no target');
      return;
    }
    const to = new URL(target);
    const upstream = httpRequest({
      host: to.hostname,
      port: to.port,
      method: req.method,
      path: req.url,
      headers: withoutHopByHop(req.headers),
      agent: false,
    });
    upstreams.add(upstream);
    upstream.on('close', () => upstreams.delete(upstream));
    res.on('close', () => {
      // The client went away: stop the upstream exchange too (except when we closed it
      // ourselves after the target answered, where it is already complete).
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.on('error', (error) => {
      if (!res.headersSent)
        res.writeHead(502, { 'content-type': 'text/plain' }).end(`bad gateway: ${error.message}`);
      else res.destroy();
    });
    upstream.on('response', (upRes) => {
      const action = fault?.rule.action;
      if (action?.type === 'lost-response' || action?.type === 'swallow-response') {
        upRes.resume();
        upRes.on('end', () => {
          fault?.markProcessed();
          if (action.type === 'lost-response') req.socket.destroy();
          else fault?.hanging.push(exchange);
        });
        return;
      }
      const headers = withoutHopByHop(upRes.headers);
      if (action?.type === 'corrupt-stream') delete headers['content-length'];
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, headers);
      res.flushHeaders();
      upRes.on('end', () => fault?.markProcessed());
      // The target cut its answer short: so does the proxy, as a real gateway would.
      upRes.on('close', () => {
        if (!upRes.complete && !res.writableEnded && action?.type !== 'corrupt-stream') res.destroy();
      });
      if (action?.type === 'corrupt-stream') corruptStream(upRes, res, action);
      else upRes.pipe(res);
    });
    req.pipe(upstream);
  }

  return {
    url: `${origin}/`,
    origin,
    get target() {
      return target;
    },
    setTarget(next) {
      target = new URL(next).origin;
    },
    inject(rule) {
      const fault = new Fault(rule, forward);
      faults.push(fault);
      return fault;
    },
    clear(handle) {
      let removed: Fault[] = [];
      if (handle === undefined) removed = faults.splice(0);
      else if (faults.includes(handle as Fault)) removed = faults.splice(faults.indexOf(handle as Fault), 1);
      for (const fault of removed) fault.retire();
    },
    seen(pathPrefix) {
      if (pathPrefix === undefined) return [...seen];
      return seen.filter((r) => new URL(r.path, 'http://proxy.invalid').pathname.startsWith(pathPrefix));
    },
    async close() {
      for (const fault of faults.splice(0)) {
        fault.held.splice(0);
        fault.retire();
      }
      for (const timer of timers) clearTimeout(timer);
      for (const upstream of upstreams) upstream.destroy();
      await closeServer(server, sockets);
    },
  };
}

function withoutHopByHop(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(name.toLowerCase()) && value !== undefined) out[name] = value;
  }
  return out;
}

/**
 * Stream `upRes` into `res`, injecting garbage right after the N-th complete SSE event (a
 * blank line ends an event), so the client's decoder meets it at an event boundary.
 */
function corruptStream(
  upRes: IncomingMessage,
  res: ServerResponse,
  action: Extract<FaultAction, { type: 'corrupt-stream' }>,
): void {
  const afterEvents = action.afterEvents ?? 1;
  const payload = action.payload === undefined ? DEFAULT_STREAM_GARBAGE : Buffer.from(action.payload);
  const then = action.then ?? 'continue';
  let events = 0;
  let prev = -1;
  let prevPrev = -1;
  let injected = false;
  let stopped = false;

  const inject = (): void => {
    injected = true;
    res.write(payload);
    if (then === 'end') {
      stopped = true;
      res.end();
      upRes.destroy();
    } else if (then === 'destroy') {
      stopped = true;
      // Let the garbage reach the client, then reset the connection.
      setImmediate(() => res.destroy());
      upRes.destroy();
    }
  };

  if (afterEvents <= 0) inject();
  upRes.on('data', (chunk: Buffer) => {
    if (stopped) return;
    if (injected) {
      res.write(chunk);
      return;
    }
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] ?? 0;
      const boundary = byte === 0x0a && (prev === 0x0a || (prev === 0x0d && prevPrev === 0x0a));
      prevPrev = prev;
      prev = byte;
      if (boundary && ++events === afterEvents) {
        res.write(chunk.subarray(0, i + 1));
        inject();
        if (!stopped && i + 1 < chunk.length) res.write(chunk.subarray(i + 1));
        return;
      }
    }
    res.write(chunk);
  });
  upRes.on('end', () => {
    if (stopped) return;
    if (!injected) res.write(payload);
    res.end();
  });
}
