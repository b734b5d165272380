/**
 * The rooms of an McpConnection and how they are wired to each other: the transports, the
 * 2025-era session, the sessionless path, the era bridge, the listen loop and the credential
 * events. The connection itself only routes host messages through them.
 */
import { canonicalServer } from '../credential/key.js';
import { secrets } from '../redact.js';
import { createLogger, type Logger } from '../log.js';
import { describeNextAction, loginAction } from '../next-action.js';
import { createAuthWire } from './auth-fetch.js';
import { Bridging } from './bridging.js';
import {
  type ConnectionOptions,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_STREAM_FAILURES,
} from './connection-options.js';
import { CredentialEvents } from './credential-events.js';
import type { JsonRpcMessage, JsonRpcRequest, JsonRpcResponse } from './jsonrpc.js';
import { ListenLoop } from './listen-loop.js';
import { type Pending, PendingTable } from './pending.js';
import { createHttpClient, type WireFetch } from './http-client.js';
import { sameOriginWireRedirects } from './redirect-policy.js';
import { ReplayPolicy } from './replay-policy.js';
import type { DescribeNext } from './rpc-errors.js';
import { Session } from './session.js';
import { Sessionless } from './sessionless.js';
import { Wires } from './wires.js';

export interface Parts {
  readonly server: string;
  readonly options: ConnectionOptions;
  readonly log: Logger;
  readonly describe: DescribeNext;
  readonly replay: ReplayPolicy;
  readonly pending: PendingTable;
  readonly wires: Wires;
  readonly session: Session;
  readonly sessionless: Sessionless;
  readonly bridging: Bridging;
  readonly listen: ListenLoop;
  readonly credentials: CredentialEvents;
  /** Start a new session without waiting for it; a failure is only logged. */
  renewInBackground(reason: string, epoch?: number): void;
  /** Open the GET listen stream of a Streamable HTTP session. */
  startListening(): void;
}

/** What the parts need from the connection that holds them. */
export interface Host {
  /** A server message that is not an answer being waited for. */
  deliver(message: JsonRpcMessage): void;
  /** The host's backpressure (McpConnection.outputReady). */
  ready(): Promise<void> | undefined;
  /** Run one of latchkey's own requests like a host request. */
  startInternal(request: JsonRpcRequest): Pending;
  closed(): boolean;
}

export function buildParts(options: ConnectionOptions, host: Host): Parts {
  const server = canonicalServer(String(options.server));
  const log = (options.logger ?? createLogger()).child({ server });
  // `parts` is filled in below; the hooks read it only after construction.
  const parts = { server, options, log } as { -readonly [K in keyof Parts]: Parts[K] };
  parts.describe = options.describeNext ?? describeNextAction;
  parts.replay = new ReplayPolicy();
  parts.pending = new PendingTable();
  parts.wires = buildWires(options, server, log, host, (error) => {
    if (host.closed()) return;
    log.info('the SSE stream ended; starting a new session', { reason: (error as Error).message });
    parts.renewInBackground('SSE stream ended');
  });
  parts.session = new Session(parts.wires, log, {
    dropped: () => {
      parts.listen.stop();
      return parts.bridging.renew();
    },
    renewed: () => parts.startListening(),
    closed: host.closed,
  });
  parts.sessionless = new Sessionless(parts.wires.http, host.deliver, log);
  parts.bridging = new Bridging({
    sessionless: parts.sessionless,
    pending: parts.pending,
    startInternal: host.startInternal,
    log,
    closed: host.closed,
  });
  parts.listen = new ListenLoop({
    http: parts.wires.http,
    deliver: host.deliver,
    log,
    maxFailures: options.maxStreamFailures ?? DEFAULT_MAX_STREAM_FAILURES,
    hooks: {
      epoch: () => parts.session.epoch,
      loggedOut: () => parts.credentials.loggedOut,
      rehandshake: (epoch, reason) => parts.renewInBackground(reason, epoch),
    },
  });
  parts.renewInBackground = (reason, epoch = parts.session.epoch) => {
    void parts.session.rehandshake(epoch, reason).catch((error: unknown) => {
      log.debug('re-handshake failed', { error: error instanceof Error ? error.message : String(error) });
    });
  };
  parts.startListening = () => {
    if (parts.wires.mode === 'http' && !host.closed()) parts.listen.start();
  };
  parts.credentials = followCredentials(parts, host);
  return parts;
}

function buildWires(
  options: ConnectionOptions,
  server: string,
  log: Logger,
  host: Host,
  sseEnded: (error: unknown) => void,
): Wires {
  const headers = options.headers ?? {};
  // Custom headers often carry API keys; a server echoing one gets it scrubbed (network-text.ts).
  for (const value of Object.values(headers)) secrets.add(value);
  const wire = {
    url: new URL(String(options.server)),
    fetch: connectionFetch(server, options),
    headers,
    ready: host.ready,
    logger: log,
    ...(options.maxMessageBytes === undefined ? {} : { maxMessageBytes: options.maxMessageBytes }),
  };
  return new Wires(wire, {
    strategy: options.transport ?? 'auto',
    log,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    resumeAttempts: options.maxStreamFailures ?? DEFAULT_MAX_STREAM_FAILURES,
    deliver: host.deliver,
    sseEnded,
  });
}

/**
 * latchkey's redirect policy, and its bearer token unless the caller authenticates itself, on
 * the caller's fetch, else on the client `httpClient` names.
 */
function connectionFetch(server: string, options: ConnectionOptions): WireFetch {
  const send = sameOriginWireRedirects(
    server,
    options.fetch ?? (options.httpClient === 'fetch' ? fetch : createHttpClient()),
  );
  if (options.authenticate === false) return send;
  return createAuthWire(
    server,
    {
      manager: options.manager,
      interactive: false,
      ...(options.subject === undefined ? {} : { subject: options.subject }),
    },
    send,
  );
}

/** Logins, logouts and reconnects from any process, applied to this connection. */
function followCredentials(parts: Parts, host: Host): CredentialEvents {
  return new CredentialEvents(parts.options.manager, parts.server, {
    loggedOut: () => {
      parts.listen.stop();
      parts.bridging.stopListen();
      const next = parts.describe(loginAction(parts.server));
      parts.log.warn(`logged out; requests now fail until a new login. Next step: ${next}`);
    },
    loggedIn: (wasLoggedOut) => {
      // A new login may be another account: a session opened under the old one must not go on.
      if (!parts.session.initialized) return;
      parts.log.info(wasLoggedOut ? 'logged in again; resuming' : 'new login; renewing the session');
      parts.renewInBackground('new login');
    },
    reconnect: () => parts.renewInBackground('latchkey reconnect'),
    closed: host.closed,
  });
}

/**
 * Bookkeeping from answers passing through: the handshake, subscriptions, tool hints. Returns
 * the answer for the host, which for a 2026-07-28 tools/list lacks the tools whose
 * `x-mcp-header` annotations are invalid (the spec says to drop them).
 */
export function observeAnswer(
  parts: Parts,
  request: JsonRpcRequest,
  response: JsonRpcResponse,
  revision: string | undefined,
): JsonRpcResponse {
  if (response.error !== undefined) return response;
  const result = response.result as Record<string, unknown> | undefined;
  if (request.method === 'tools/list') {
    parts.replay.learnTools(result, request.params?.['cursor'] === undefined);
    if (revision !== undefined) {
      return { ...response, result: parts.sessionless.learnToolHeaders(request, result) };
    }
  }
  if (request.method === 'initialize') parts.session.completed(request, result);
  else parts.session.observe(request);
  return response;
}
