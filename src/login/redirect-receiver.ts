import { createHash } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';

import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import { resultPage, type ResultOutcome } from './result-page.js';

/**
 * The loopback redirect endpoint of a native app (RFC 8252 §7.3): an HTTP server on
 * 127.0.0.1 (never 0.0.0.0, never `localhost`, which may resolve to another interface)
 * that waits for the one authorization response for this login.
 *
 * The port is stable per server (derived from its URL), so a user who allowed it in a
 * firewall, or an AS that registered it exactly, sees the same redirect URI every time.
 * When that port is taken, the OS picks one: RFC 8252 requires ASes to accept any port on
 * a loopback redirect URI.
 */
export interface RedirectReceiver {
  readonly redirectUri: string;
  /**
   * The next authorization response to arrive. The flow judges each one: a response with the
   * wrong `state` (a stale tab, a replaced login, a forged request from any local process or
   * web page) is answered and ignored, and the login keeps waiting for its own.
   */
  next(): Promise<AuthorizationCallback>;
  close(): void;
}

export interface AuthorizationCallback {
  readonly params: URLSearchParams;
  /** Show the final page to the browser that delivered this response. */
  answer(outcome: ResultOutcome): void;
}

export interface RedirectReceiverOptions {
  /** The MCP server being authorized, for the stable port and the result page. */
  server: string;
  /** Fixed port (e.g. one pre-registered with the AS). Default: stable per server, then any. */
  port?: number;
  path?: string;
  /**
   * The host name in the redirect URI. Default `127.0.0.1`. `localhost` exists for clients
   * pre-registered with a localhost redirect; the listener still binds 127.0.0.1 only.
   */
  host?: '127.0.0.1' | 'localhost';
  /**
   * How long to keep trying the stable port while it is taken before taking any port.
   * A login that replaced another process's waits for that process to let go of it, so the
   * replaced login's tab still reaches a listener that can tell its user. Default 0.
   */
  portWaitMs?: number;
  signal?: AbortSignal;
}

const CALLBACK_PATH = '/callback';
/** Responses waiting to be judged; more than this at once is a flood, not a browser. */
const MAX_QUEUED = 16;

export async function startRedirectReceiver(options: RedirectReceiverOptions): Promise<RedirectReceiver> {
  const path = options.path ?? CALLBACK_PATH;
  const inbox = new CallbackQueue(options.server);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method !== 'GET' || url.pathname !== path) return plain(res, 404, 'not found');
    // Only requests that look like an authorization response count.
    if (!url.searchParams.has('code') && !url.searchParams.has('error'))
      return plain(res, 400, 'unexpected request');
    if (!inbox.push(url.searchParams, res)) plain(res, 429, 'too many requests');
  });
  const port = await listenWithWait(server, options);

  const onAbort = (): void => {
    inbox.fail(
      new LatchkeyError(ErrorCode.CANCELLED, 'the login was cancelled.', {
        server: options.server,
        retryable: false,
      }),
    );
    close();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const close = (): void => {
    options.signal?.removeEventListener('abort', onAbort);
    inbox.fail(
      new LatchkeyError(ErrorCode.CANCELLED, 'the login listener was closed.', {
        server: options.server,
        retryable: false,
      }),
    );
    server.close();
    server.closeAllConnections();
  };
  if (options.signal?.aborted === true) onAbort();

  return {
    redirectUri: `http://${options.host ?? '127.0.0.1'}:${port}${path}`,
    next: () => inbox.next(),
    close,
  };
}

/** Authorization responses in arrival order, each held open until the flow answers it. */
class CallbackQueue {
  readonly #queued: AuthorizationCallback[] = [];
  readonly #waiters: { resolve(c: AuthorizationCallback): void; reject(e: unknown): void }[] = [];
  #failure: unknown;

  constructor(private readonly server: string) {}

  push(params: URLSearchParams, res: ServerResponse): boolean {
    if (this.#failure !== undefined || this.#queued.length >= MAX_QUEUED) return false;
    const callback: AuthorizationCallback = {
      params,
      answer: (outcome) => sendResult(res, this.server, outcome),
    };
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter.resolve(callback);
    else this.#queued.push(callback);
    return true;
  }

  next(): Promise<AuthorizationCallback> {
    const queued = this.#queued.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#failure !== undefined) return Promise.reject(this.#failure as Error);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  fail(error: unknown): void {
    this.#failure ??= error;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#failure);
    for (const callback of this.#queued.splice(0))
      callback.answer({ ok: false, message: 'this login is no longer waiting.' });
  }
}

function sendResult(res: ServerResponse, server: string, outcome: ResultOutcome): void {
  if (res.headersSent) return;
  res.writeHead(outcome.ok ? 200 : 400, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    'referrer-policy': 'no-referrer',
  });
  res.end(resultPage(server, outcome));
}

/** A port in the dynamic range, the same for the same server URL on every run. */
export function stablePort(server: string): number {
  const digest = createHash('sha256').update(server).digest();
  return 49152 + (digest.readUInt16BE(0) % (65535 - 49152));
}

async function listenWithWait(server: Server, options: RedirectReceiverOptions): Promise<number> {
  const exact = options.port !== undefined;
  const port = options.port ?? stablePort(options.server);
  const until = Date.now() + (options.portWaitMs ?? 0);
  for (;;) {
    const waiting = Date.now() < until;
    try {
      await listen(server, port, exact || waiting);
      break;
    } catch (error) {
      const busy = isLatchkeyError(error) && error.retryable;
      if (!waiting || !busy) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}

function listen(server: Server, port: number, exact: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      if (!exact && error.code === 'EADDRINUSE') {
        server.listen(0, '127.0.0.1', () => resolve());
        return;
      }
      reject(
        new LatchkeyError(
          ErrorCode.INVALID_INPUT,
          `cannot listen for the login redirect on 127.0.0.1:${port}.`,
          {
            retryable: error.code === 'EADDRINUSE',
            next: { kind: 'configure', detail: 'free the port or choose another redirect port' },
            cause: error,
          },
        ),
      );
    };
    server.once('error', onError);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text);
}
