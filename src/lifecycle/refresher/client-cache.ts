import { createHash } from 'node:crypto';

import type { CredentialKey } from '../../credential/key.js';
import type { ClientContext } from '../../oauth/client-context.js';
import type { Registration } from '../../store/contract.js';
import type { ClientContextSource } from '../context.js';

interface Kept {
  client: Promise<ClientContext>;
  until: number;
}

/**
 * The refresher's clients per (server, issuer, client id, registration): the AS metadata a
 * refresh sends with, read from the store once per `ttlMs` instead of once per refresh. The
 * registration is read with every claim, once per issuer in the batch (`observe`), and is
 * part of the key, so a client secret replaced in the store is used from the next claim on: a
 * refresh with the old one would be refused as `invalid_client`, which marks the credential
 * needs-login. A client is also dropped when a refresh with it fails (a moved token endpoint
 * fails first), and in any case after `ttlMs`. A load that fails is not kept.
 */
export class ClientCache implements ClientContextSource {
  readonly #kept = new Map<string, Kept>();
  /** Per issuer, the registration the last claim saw, as registrationId(). */
  readonly #registrations = new Map<string, string>();
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(ttlMs: number, now: () => number = Date.now) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** The registration at `issuer` as a claim just read it. */
  observe(issuer: string, registration: Registration | undefined): void {
    this.#registrations.set(issuer, registrationId(registration));
  }

  get(key: CredentialKey, clientId: string, load: () => Promise<ClientContext>): Promise<ClientContext> {
    const id = `${cacheId(key, clientId)}\u0000${this.#registrations.get(key.issuer) ?? '?'}`;
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
    const prefix = `${cacheId(key, clientId)}\u0000`;
    for (const id of this.#kept.keys()) if (id.startsWith(prefix)) this.#kept.delete(id);
  }

  get size(): number {
    return this.#kept.size;
  }
}

function cacheId(key: CredentialKey, clientId: string): string {
  return `${key.server}\u0000${key.issuer}\u0000${clientId}`;
}

/** The registration as far as a refresh depends on it; the secret only as a digest. */
function registrationId(reg: Registration | undefined): string {
  if (reg === undefined) return '-';
  const parts = [reg.clientId, reg.tokenEndpointAuthMethod, reg.clientSecret ?? '', String(reg.registeredAt)];
  return createHash('sha256').update(parts.join('\u0000')).digest('base64url');
}
