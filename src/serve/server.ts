import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

import { CredentialManager } from '../lifecycle/manager.js';
import type { Refresher } from '../lifecycle/refresher/refresher.js';
import { startRefresher } from '../lifecycle/refresher/refresher.js';
import { createLogger, type Logger } from '../log.js';
import type { ServeStore } from '../store/serve-contract.js';
import { DEFAULT_LISTEN, type ListenAddress, type UpstreamConfig } from './config.js';
import { CONNECT_TTL_MS } from './connect.js';
import type { ServeContext } from './context.js';
import { EventStreams, type EventStreamOptions } from './event-stream.js';
import { HttpError, sendError, sendJson } from './http.js';
import { PORTAL_LINK_TTL_MS, PORTAL_SESSION_TTL_MS } from './portal-auth.js';
import { type JwtConfig, JwtVerifier } from './jwt.js';
import { McpGateway } from './mcp-gateway.js';
import { ServeMetrics } from './metrics.js';
import { routeTemplateOf } from './route-template.js';
import { route } from './routes.js';

export interface ServeOptions {
  /** A store with the serve tables (SQLite or Postgres; see hasServeTables). */
  store: ServeStore;
  upstreams: readonly UpstreamConfig[];
  /** Where to listen. Default 127.0.0.1:8787 (port 0: any free port). */
  listen?: ListenAddress;
  /** External base URL for redirect URIs and links. Default: http://<listen address>. */
  publicUrl?: string;
  /** Run the fleet refresher in this instance (docs/refresher.md). Default true. */
  refresher?: boolean;
  /**
   * How long this instance's refresh leases last, the refresher's claims and the refreshes
   * requests start alike: how soon other instances take over after this one is killed. Leases
   * are extended while their refresh runs. Default 45 000 ms.
   */
  leaseTtlMs?: number;
  /** Default: JSON lines on stderr at LATCHKEY_LOG_LEVEL, else info. */
  logger?: Logger;
  /** For requests to ASes and MCP servers. Default: global fetch. */
  fetch?: typeof fetch;
  /** Timeout of each request to an AS. Default 30 000 ms. */
  requestTimeoutMs?: number;
  /** How long a connect link can be completed. Default 10 minutes. */
  connectTtlMs?: number;
  /** How long a portal link can be opened. Default 5 minutes. */
  portalLinkTtlMs?: number;
  /** How long a portal session lasts (absolute). Default 1 hour. */
  portalSessionTtlMs?: number;
  /**
   * The application's page that signs its user in and redirects to a fresh portal link
   * (POST /v1/subjects/{subject}/portal). The page sends people without a session there, with
   * `upstream=<id>` when they came to connect one. Default: none; they get a page saying to
   * open the portal from the application.
   */
  portalSignInUrl?: string;
  /**
   * The origins a connect's `return_to` may name (`https://app.example.com`). Default: any
   * http(s) URL, since only holders of an app key can start a connect.
   */
  returnToOrigins?: readonly string[];
  /** Accept user JWTs on /mcp/{upstream} (docs/serve.md, "User JWTs"). Default: none accepted. */
  jwt?: JwtConfig;
  /**
   * The MCP endpoints' upstream links: at most `maxLinks` (default 1000) open per instance,
   * each closed after `idleMs` unused (default 10 minutes).
   */
  mcpLinks?: { maxLinks?: number; idleMs?: number };
  /** Serve HTTPS directly with this PEM certificate (chain) and key. Default: plain HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** GET /v1/events: heartbeat interval and per-client buffer bound (event-stream.ts). */
  events?: EventStreamOptions;
}

export interface RunningServe {
  /** The address it listens on, as a URL (`http://127.0.0.1:8787`). */
  readonly url: string;
  readonly publicUrl: string;
  readonly manager: CredentialManager;
  /** Stop accepting, finish requests in flight, stop the refresher. The store stays open. */
  close(): Promise<void>;
}

/**
 * One manager for every subject. With the refresher on, refreshing ahead is the refresher's
 * job, and requests refresh only what they find expired; a short lease is kept alive.
 */
function managerFor(options: ServeOptions, logger: Logger, useRefresher: boolean): CredentialManager {
  return new CredentialManager({
    store: options.store,
    logger,
    proactiveRefresh: useRefresher ? 'refresher' : true,
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
    ...(options.leaseTtlMs === undefined ? {} : { leaseTtlMs: options.leaseTtlMs, keepLeaseAlive: true }),
  });
}

/**
 * Start `latchkey serve` on a store the caller opened (and closes): the HTTP API on
 * node:http, one CredentialManager for every subject, and, by default, the refresher that
 * keeps every stored credential fresh whether or not anyone is calling.
 */
export async function startServe(options: ServeOptions): Promise<RunningServe> {
  const logger = options.logger ?? createLogger({ format: 'json', level: levelFromEnv() });
  const useRefresher = options.refresher ?? true;
  const manager = managerFor(options, logger, useRefresher);
  const listen = options.listen ?? DEFAULT_LISTEN;
  // Bounded time per request too, not only bounded bodies: a client that trickles its
  // headers or body must not hold a connection for Node's default 5 minutes.
  const timeouts = { requestTimeout: 30_000, headersTimeout: 10_000 };
  const server: Server =
    options.tls === undefined ? createServer(timeouts) : createTlsServer({ ...timeouts, ...options.tls });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${options.tls === undefined ? 'http' : 'https'}://${host}:${address.port}`;
  const publicUrl = options.publicUrl ?? url;
  const metrics = new ServeMetrics();
  manager.on('event', (event) => metrics.observeEvent(event));
  const ctx: ServeContext = {
    store: options.store,
    manager,
    upstreams: new Map(options.upstreams.map((u) => [u.id, u])),
    publicUrl: options.publicUrl ?? url,
    logger,
    fetch: options.fetch,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    connectTtlMs: options.connectTtlMs ?? CONNECT_TTL_MS,
    portalLinkTtlMs: options.portalLinkTtlMs ?? PORTAL_LINK_TTL_MS,
    portalSessionTtlMs: options.portalSessionTtlMs ?? PORTAL_SESSION_TTL_MS,
    portalSignInUrl: options.portalSignInUrl,
    returnToOrigins: options.returnToOrigins,
    jwt: options.jwt === undefined ? undefined : new JwtVerifier(options.jwt),
    mcpGateway: new McpGateway({ manager, logger, fetch: options.fetch, ...options.mcpLinks }),
    events: new EventStreams(manager, options.upstreams, publicUrl, options.events),
    metrics,
  };
  server.on('request', (req, res) => void handle(ctx, req, res));
  const refresher: Refresher | undefined = useRefresher
    ? startRefresher({
        store: options.store,
        logger,
        ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
        ...(options.leaseTtlMs === undefined ? {} : { leaseTtlMs: options.leaseTtlMs }),
      })
    : undefined;
  if (refresher !== undefined) metrics.countTakeoversFrom(() => refresher.stats().leaseTakeovers);
  logger.info('latchkey serve listening', { url, publicUrl: ctx.publicUrl, upstreams: ctx.upstreams.size });
  return {
    url,
    publicUrl: ctx.publicUrl,
    manager,
    close: () => stop(server, manager, refresher, ctx),
  };
}

async function handle(ctx: ServeContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = Date.now();
  const clock = performance.now();
  const id = randomBytes(6).toString('hex');
  res.setHeader('x-request-id', id);
  try {
    await route(ctx, req, res);
  } catch (error) {
    if (error instanceof HttpError) sendError(res, error);
    else {
      ctx.logger.error('request failed', {
        requestId: id,
        error: error instanceof Error ? error.name : 'unknown',
      });
      if (!res.headersSent)
        sendJson(res, 500, { error: 'internal', message: 'an unexpected error occurred.' });
      else res.destroy();
    }
  }
  ctx.metrics.observeRequest(
    req.method ?? 'GET',
    routeTemplateOf(req.url),
    res.statusCode,
    (performance.now() - clock) / 1000,
  );
  // The path only: the callback's query holds the code and state, and nothing else needs logging.
  const path = (req.url ?? '/').split('?')[0];
  ctx.logger.info('request', {
    requestId: id,
    method: req.method,
    path,
    status: res.statusCode,
    ms: Date.now() - started,
  });
}

async function stop(
  server: Server,
  manager: CredentialManager,
  refresher: Refresher | undefined,
  ctx: Pick<ServeContext, 'events' | 'mcpGateway'>,
): Promise<void> {
  // A keep-alive connection whose request finishes during the stop turns idle afterwards;
  // closing idle ones again until the server is closed keeps it from holding the stop open.
  const sweep = setInterval(() => server.closeIdleConnections(), 100);
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    // Event streams and hosts' GET streams never finish on their own: end them, or close()
    // would wait forever.
    ctx.events.close();
    ctx.mcpGateway?.endStreams();
  });
  clearInterval(sweep);
  await ctx.mcpGateway?.close();
  await refresher?.close();
  await manager.settle();
  manager.close();
}

function levelFromEnv(): 'debug' | 'info' | 'warn' | 'error' | 'silent' {
  const value = process.env['LATCHKEY_LOG_LEVEL'];
  return value === 'debug' || value === 'warn' || value === 'error' || value === 'silent' ? value : 'info';
}
