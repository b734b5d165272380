// The smallest token endpoint a refresher can use, for `npm run bench fleet`: node:http,
// refresh_token grants only, a fresh random access/refresh pair per request, and counters.
// It does no client authentication, no token bookkeeping and no crypto beyond randomBytes,
// so what a figure measures is latchkey's cost, not an authorization server's.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TokenEndpointOptions {
  /** `expires_in` of every issued access token, in seconds. Default 3600. */
  expiresInS?: number;
  /** Wait this long before answering, to stand for a real AS's round trip. Default 0. */
  delayMs?: number;
}

export interface TokenEndpoint {
  /** The issuer URL (loopback http); the token endpoint is `${issuer}/token`. */
  issuer: string;
  /** refresh_token grants answered with tokens. */
  readonly refreshes: number;
  /** Requests of any other kind (answered 400); a bench expects 0. */
  readonly rejected: number;
  /** Refreshes answered in each whole second since `resetWindows()`. */
  perSecond(): number[];
  resetWindows(): void;
  setDelay(ms: number): void;
  setExpiresIn(seconds: number): void;
  close(): Promise<void>;
}

export async function startTokenEndpoint(options: TokenEndpointOptions = {}): Promise<TokenEndpoint> {
  let expiresIn = options.expiresInS ?? 3600;
  let delayMs = options.delayMs ?? 0;
  let refreshes = 0;
  let rejected = 0;
  let windowStart = Date.now();
  let windows: number[] = [];
  const answer = (res: ServerResponse, status: number, body: Record<string, unknown>): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(text);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let body = '';
    for await (const chunk of req) body += (chunk as Buffer).toString();
    const form = new URLSearchParams(body);
    if (req.method !== 'POST' || req.url !== '/token' || form.get('grant_type') !== 'refresh_token') {
      rejected++;
      answer(res, 400, { error: 'unsupported_grant_type' });
      return;
    }
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    refreshes++;
    const second = Math.floor((Date.now() - windowStart) / 1000);
    windows[second] = (windows[second] ?? 0) + 1;
    answer(res, 200, {
      access_token: randomBytes(24).toString('base64url'),
      refresh_token: randomBytes(24).toString('base64url'),
      token_type: 'Bearer',
      expires_in: expiresIn,
    });
  };
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    issuer: `http://127.0.0.1:${port}`,
    get refreshes() {
      return refreshes;
    },
    get rejected() {
      return rejected;
    },
    perSecond: () => Array.from(windows, (n) => n ?? 0),
    resetWindows: () => {
      windowStart = Date.now();
      windows = [];
    },
    setDelay: (ms) => (delayMs = ms),
    setExpiresIn: (seconds) => (expiresIn = seconds),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
