import { createHash } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';

import { ErrorCode, LatchkeyError } from '../errors.js';
import { resultPage } from './result-page.js';

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
  /** Resolves with the query parameters of the first authorization response that arrives. */
  readonly callback: Promise<URLSearchParams>;
  /** Show the final page to the browser that delivered the callback. */
  finish(outcome: { ok: true } | { ok: false; message: string }): void;
  close(): void;
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
  signal?: AbortSignal;
}

const CALLBACK_PATH = '/callback';

export async function startRedirectReceiver(options: RedirectReceiverOptions): Promise<RedirectReceiver> {
  const path = options.path ?? CALLBACK_PATH;
  let deliver!: (params: URLSearchParams) => void;
  let fail!: (error: unknown) => void;
  const callback = new Promise<URLSearchParams>((resolve, reject) => {
    deliver = resolve;
    fail = reject;
  });
  callback.catch(() => undefined); // observed by the caller; avoid an unhandled rejection if it never is
  let pending: ServerResponse | undefined;

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method !== 'GET' || url.pathname !== path) return plain(res, 404, 'not found');
    // Only requests that look like an authorization response count; the flow then checks
    // state and iss and fails the login on a mismatch (a forged or crossed response).
    if (!url.searchParams.has('code') && !url.searchParams.has('error'))
      return plain(res, 400, 'unexpected request');
    if (pending !== undefined) return plain(res, 409, 'this login was already answered');
    pending = res;
    deliver(url.searchParams);
  });
  await listen(server, options.port ?? stablePort(options.server), options.port !== undefined);
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  const onAbort = (): void => {
    fail(
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
    server.close();
    server.closeAllConnections();
  };

  return {
    redirectUri: `http://${options.host ?? '127.0.0.1'}:${port}${path}`,
    callback,
    finish(outcome) {
      const res = pending;
      if (res === undefined) return;
      const page = resultPage(options.server, outcome);
      res.writeHead(outcome.ok ? 200 : 400, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
        'referrer-policy': 'no-referrer',
      });
      res.end(page);
    },
    close,
  };
}

/** A port in the dynamic range, the same for the same server URL on every run. */
export function stablePort(server: string): number {
  const digest = createHash('sha256').update(server).digest();
  return 49152 + (digest.readUInt16BE(0) % (65535 - 49152));
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
            nextStep: 'free the port or choose another redirect port',
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
