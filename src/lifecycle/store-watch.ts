import type { CredentialKey } from '../credential/key.js';
import type { Logger } from '../log.js';
import { type CredentialTable, type EventLog, EventType, type LifecycleEvent } from '../store/contract.js';
import type { TokenCache } from './token-cache.js';

export interface StoreWatchOptions {
  store: CredentialTable & EventLog;
  cache: TokenCache;
  logger: Logger;
  pollMs: number;
  /** Every event, in order, as the store delivered it. */
  onEvent(event: LifecycleEvent): void;
  /** A logout somewhere queued a revocation. */
  onRevocationPending(): void;
  isClosed(): boolean;
}

/**
 * Follow the store's event log (rule 4 in docs/architecture.md): re-read each credential an
 * event touched and bring the cache in line, so tokens another process refreshed, replaced
 * or deleted are seen here without a request. Returns the function that stops watching.
 */
export function watchStore(options: StoreWatchOptions): () => void {
  return options.store.watch((events) => onEvents(options, events), { pollMs: options.pollMs });
}

function onEvents(options: StoreWatchOptions, events: LifecycleEvent[]): void {
  const touched = new Map<string, CredentialKey>();
  for (const event of events) {
    touched.set(`${event.server}\u0000${event.issuer}\u0000${event.subject}`, event);
    // A logout elsewhere queued a revocation: look at its due time now, not a minute later.
    if (event.type === EventType.REVOCATION_PENDING) options.onRevocationPending();
    options.onEvent(event);
  }
  for (const key of touched.values()) void reload(options, key);
}

/** Only credentials this process has cached are re-read; others are read when asked for. */
async function reload(options: StoreWatchOptions, key: CredentialKey): Promise<void> {
  const entry = options.cache.peek(key.server, key.subject);
  if (entry === undefined || entry.token.issuer !== key.issuer || options.isClosed()) return;
  try {
    const cred = await options.store.getCredential({
      server: key.server,
      issuer: key.issuer,
      subject: key.subject,
    });
    if (cred === undefined || cred.status.state === 'needs-login') options.cache.forget(key);
    else if (cred.generation !== entry.token.generation) options.cache.remember(cred);
  } catch (error) {
    options.logger.debug('store re-read after a change failed', { server: key.server, error });
  }
}
