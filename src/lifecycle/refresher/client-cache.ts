import type { CredentialKey } from '../../credential/key.js';
import type { ClientContext } from '../../oauth/client-context.js';
import type { ClientContextSource } from '../context.js';

interface Kept {
  client: Promise<ClientContext>;
  until: number;
}

/**
 * The refresher's clients per (server, issuer, client id): the AS metadata and registration a
 * refresh sends with, read from the store once per `ttlMs` instead of twice per refresh.
 * Honest about change: a client is dropped when a refresh with it fails (a rotated client
 * secret, a moved token endpoint, a rejected registration all fail first), and in any case
 * after `ttlMs`, so a new login's registration or a metadata refetch by another process is
 * picked up within that time. A load that fails is not kept.
 */
export class ClientCache implements ClientContextSource {
  readonly #kept = new Map<string, Kept>();
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(ttlMs: number, now: () => number = Date.now) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get(key: CredentialKey, clientId: string, load: () => Promise<ClientContext>): Promise<ClientContext> {
    const id = cacheId(key, clientId);
    const now = this.#now();
    const kept = this.#kept.get(id);
    if (kept !== undefined && kept.until > now) return kept.client;
    const client = load();
    const entry = { client, until: now + this.#ttlMs };
    this.#kept.set(id, entry);
    client.catch(() => {
      if (this.#kept.get(id) === entry) this.#kept.delete(id);
    });
    return client;
  }

  forget(key: CredentialKey, clientId: string): void {
    this.#kept.delete(cacheId(key, clientId));
  }

  get size(): number {
    return this.#kept.size;
  }
}

function cacheId(key: CredentialKey, clientId: string): string {
  return `${key.server}\u0000${key.issuer}\u0000${clientId}`;
}
