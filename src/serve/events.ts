import type { LifecycleEvent } from '../store/contract.js';
import { EventType } from '../store/contract.js';
import type { UpstreamConfig } from './config.js';
import { connectUrl } from './context.js';

/**
 * The lifecycle events `GET /v1/events` streams (docs/serve.md "Events"), derived from the
 * store's event log: every state change of a credential is appended there in the same
 * transaction as the change, by whichever instance (or CLI) made it, and every process on
 * the store learns of it through the store's own change feed (PRAGMA data_version polling on
 * SQLite, LISTEN/NOTIFY on Postgres). So there is no second channel to keep consistent: the
 * event id is the log's id, which is also what `Last-Event-ID` resumes from.
 */
export type ServeEventType = 'connected' | 'refreshed' | 'retrying' | 'needs-login' | 'disconnected';

/** One event as the stream sends it. Never a token: only ids, codes and times. */
export interface ServeEvent {
  /** The store's event id (the SSE `id:`), increasing. */
  id: number;
  type: ServeEventType;
  subject: string;
  upstream: string;
  /** ISO 8601, when the change was committed. */
  at: string;
  /** needs-login: the AS's error (`invalid_grant`, `invalid_client`) or `no_refresh_token`. */
  error?: string;
  /** retrying: why the refresh failed (a short reason or latchkey error code). */
  reason?: string;
  /** retrying: when the next attempt is due. */
  retry_at?: string;
  /** needs-login: where the app POSTs a new connection for this user. */
  connect_url?: string;
}

const TYPES: Partial<Record<LifecycleEvent['type'], ServeEventType>> = {
  [EventType.ACQUIRED]: 'connected',
  [EventType.REFRESHED]: 'refreshed',
  [EventType.REFRESH_FAILED]: 'retrying',
  [EventType.NEEDS_LOGIN]: 'needs-login',
  [EventType.REVOKED]: 'disconnected',
  [EventType.DELETED]: 'disconnected',
};

/** Finds the upstream a credential's canonical server URL belongs to. */
export function upstreamIndex(upstreams: Iterable<UpstreamConfig>): ReadonlyMap<string, UpstreamConfig> {
  return new Map([...upstreams].map((u) => [u.url, u]));
}

/**
 * The stream's view of one store event, or undefined for events the app has no use for
 * (adoptions, device prompts, revocation retries) and for servers this gateway does not serve.
 */
export function serveEventOf(
  event: LifecycleEvent,
  upstreams: ReadonlyMap<string, UpstreamConfig>,
  publicUrl: string,
): ServeEvent | undefined {
  const type = TYPES[event.type];
  const upstream = upstreams.get(event.server);
  if (type === undefined || upstream === undefined) return undefined;
  const view: ServeEvent = {
    id: event.id,
    type,
    subject: event.subject,
    upstream: upstream.id,
    at: new Date(event.at).toISOString(),
  };
  const detail = event.detail ?? {};
  if (type === 'needs-login') {
    view.error = String(detail['error'] ?? 'login_required');
    view.connect_url = connectUrl({ publicUrl }, event.subject, upstream.id);
  }
  if (type === 'retrying') {
    if (detail['reason'] !== undefined) view.reason = String(detail['reason']);
    const retryIn = Number(detail['retryInMs']);
    if (Number.isFinite(retryIn)) view.retry_at = new Date(event.at + retryIn).toISOString();
  }
  return view;
}

/** One SSE message: the id lets a reconnecting client resume after it. */
export function sseMessage(event: ServeEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}
