/**
 * Ask the MCP server for its 401 challenge before any token exists (AUTH-04, AUTH-05).
 *
 * A login that starts on its own (an explicit login call, or a proxy's first request when
 * it runs logins itself) has no server response in hand. Without one, discovery could
 * only guess the well-known PRM locations, and a server that publishes its metadata only at
 * the URL its challenge names (often with the AS on another origin) would fail, while the
 * challenge's `scope` would be missed for scope selection. `doctor` and the login hook both
 * call this, so they start discovery from the same facts.
 *
 * The request is a bare JSON-RPC `ping` POST, harmless if the server happens not to require
 * authorization. Its body is never read.
 */
import type { BearerChallenge } from './types.js';
import { bearerChallenge } from './www-authenticate.js';

export interface ChallengeProbe {
  status: number;
  /** The first Bearer challenge of a 401 (or 403), if it had one. */
  challenge: BearerChallenge | undefined;
  /** The server's Date header, for the clock check. */
  date: string | null;
  /** Epoch ms just before the request was sent. */
  sentAt: number;
}

export interface ChallengeProbeOptions {
  fetch?: typeof fetch | undefined;
  signal?: AbortSignal | undefined;
  /** Default 15 000 ms. */
  timeoutMs?: number | undefined;
}

/** Throws what fetch throws (unreachable, timeout, abort); callers decide what that means. */
export async function probeChallenge(
  server: string,
  options: ChallengeProbeOptions = {},
): Promise<ChallengeProbe> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 15_000);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
  const sentAt = Date.now();
  const response = await (options.fetch ?? fetch)(server, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'ping' }),
    signal,
  });
  await response.body?.cancel().catch(() => undefined);
  const challenge =
    response.status === 401 || response.status === 403 ? bearerChallenge(response) : undefined;
  return { status: response.status, challenge, date: response.headers.get('date'), sentAt };
}
