import type { EventLog, LifecycleEvent } from './contract.js';

/**
 * The newest `scan` events (of `server`, if given), oldest first. `readEvents` pages from the
 * oldest, so questions about what happened lately (a pending device prompt, logins started
 * this minute, an earlier login attempt) start from the newest id instead.
 */
export async function recentEvents(
  store: EventLog,
  scan: number,
  server?: string,
): Promise<LifecycleEvent[]> {
  const afterId = Math.max(0, (await store.lastEventId()) - scan);
  return store.readEvents({ afterId, ...(server === undefined ? {} : { server }) });
}
