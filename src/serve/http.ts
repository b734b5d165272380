import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The HTTP plumbing of `latchkey serve`, on node:http alone: bounded JSON bodies, JSON
 * answers that are never cached, and one error shape. Every error names what it concerns
 * (the upstream when there is one) and, when the caller can do something, a link to do it.
 */

/** Largest request body read. The API's bodies are a few hundred bytes. */
export const MAX_BODY_BYTES = 16 * 1024;

export interface ErrorBody {
  /** Stable, snake_case: `login_required`, `unauthorized`, `not_found`… */
  error: string;
  /** One sentence for a person (never a secret). */
  message: string;
  upstream?: string;
  /** For `login_required`: where to start a new connection (POST). */
  connect_url?: string;
  /** When a retry can succeed: the earliest moment, ISO 8601. */
  retry_at?: string;
}

/** An answer the API gives on purpose; anything else thrown is a 500. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(body.message);
    this.name = 'HttpError';
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    // Tokens and connection states are per user and change: no shared or stored copies.
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

export function sendError(res: ServerResponse, error: HttpError): void {
  sendJson(res, error.status, error.body, error.headers);
}

/** The request body as JSON; 413 past MAX_BODY_BYTES (the rest is not read), 400 if not JSON. */
export async function readJson(req: IncomingMessage, maxBytes = MAX_BODY_BYTES): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge(maxBytes);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, { error: 'invalid_request', message: 'the request body is not valid JSON.' });
  }
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(
    413,
    { error: 'body_too_large', message: `request bodies are limited to ${maxBytes} bytes.` },
    { connection: 'close' },
  );
}

export function iso(epochMs: number | undefined): string | null {
  return epochMs === undefined ? null : new Date(epochMs).toISOString();
}
