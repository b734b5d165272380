/**
 * What latchkey's two node:http clients share: the MCP wire client (src/mcp/http-client.ts)
 * and the fleet refresher's token fetch (src/oauth/token-http.ts). Both replace the global
 * fetch on a hot path, and both must keep what fetch promised their callers: a network
 * failure rejects with a TypeError whose `cause` is the system error (recovery.ts and
 * token-error.ts classify by it), an abort rejects with the signal's reason, and a request is
 * never sent twice here.
 */
import type { Agent, ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import * as http from 'node:http';

export interface Transport {
  agent: Agent;
  request: (url: URL, options: RequestOptions) => ClientRequest;
}

/**
 * An idle connection is closed after 4 s, or 1 s before the server's `Keep-Alive: timeout`
 * when that is sooner (Node's agent applies the hint only under a timeout of its own), so a
 * request is rarely sent on a connection the server is closing. undici's defaults, the same.
 */
const AGENT_OPTIONS = { keepAlive: true, timeout: 4000 };

/** Sockets of requests sent with `reuse: false`: closed when their answer ends. */
const spent = new WeakSet<object>();

/** One keep-alive agent per protocol, made on first use; https (and TLS) loads only for https. */
export function transports(): (protocol: string) => Promise<Transport> {
  const made = new Map<string, Promise<Transport>>();
  return (protocol) => {
    let transport = made.get(protocol);
    transport ??=
      protocol === 'https:'
        ? import('node:https').then((https) => ({
            agent: sparing(new https.Agent(AGENT_OPTIONS)),
            request: https.request,
          }))
        : Promise.resolve({ agent: sparing(new http.Agent(AGENT_OPTIONS)), request: http.request });
    made.set(protocol, transport);
    return transport;
  };
}

/**
 * The agent asks keepSocketAlive whether a socket whose answer ended goes back to the pool;
 * a spent one is destroyed there instead, before any other request can be given it. (A
 * `Connection: close` request header would not do: a server that answers `Connection:
 * keep-alive` explicitly, as SSE responses do, keeps the client's socket pooled.)
 */
function sparing<A extends Agent>(agent: A): A {
  const keep = agent.keepSocketAlive.bind(agent) as (socket: object) => boolean;
  agent.keepSocketAlive = (socket) => !spent.has(socket) && keep(socket);
  return agent;
}

/**
 * Wait for the rest of this turn's I/O before a connection is chosen. A server that closed a
 * kept-alive connection (a restart, an idle timeout) has its FIN waiting in the same turn as
 * the next request more often than not on a busy machine; handled first, it takes the
 * connection out of the agent's pool and the request goes out on a new one. Written at once,
 * the request went onto the closed connection and failed as "may have run" although no
 * server ever saw it (test/mcp/http-client.test.ts shows both orders). A request decided
 * before the server began to close is the honest in-flight case, and recovery.ts owns it.
 */
export function pollFirst(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export interface Outgoing {
  method: string;
  headers: Record<string, string | number>;
  body: string | undefined;
  signal: AbortSignal | null | undefined;
  /** False: the connection is closed once this answer ends, not kept for another request. */
  reuse?: boolean;
}

export interface Sent {
  response: Promise<IncomingMessage>;
  /** Stop listening to the signal: the caller calls it once the answer no longer needs it. */
  detach: () => void;
}

/** Send one request; its answer's head arrives in `response`, failures shaped as fetch's. */
export function sendRequest(url: URL, outgoing: Outgoing, transport: Transport): Sent {
  const { signal, body } = outgoing;
  const headers = { ...outgoing.headers };
  if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
  const request = transport.request(url, { method: outgoing.method, headers, agent: transport.agent });
  if (outgoing.reuse === false) request.once('socket', (socket) => spent.add(socket));
  // Once: the end, the close and a release may each call it, and removing a listener is not free.
  let attached = signal !== undefined && signal !== null;
  const detach = (): void => {
    if (attached) signal?.removeEventListener('abort', onAbort);
    attached = false;
  };
  let rejectResponse: (reason: unknown) => void = () => undefined;
  const onAbort = (): void => {
    request.destroy();
    rejectResponse(signal?.reason);
  };
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    rejectResponse = reject;
    signal?.addEventListener('abort', onAbort, { once: true });
    request.on('error', (error: NodeJS.ErrnoException) => {
      detach();
      if (signal?.aborted === true) return;
      // Not sent again, even on a kept-alive connection the server just closed: the server
      // may have read it, and only the caller knows what may run twice.
      reject(new TypeError('fetch failed', { cause: error }));
    });
    request.once('response', resolve);
  });
  request.end(body);
  return { response, detach };
}
