/**
 * A storage adapter for oidc-provider, one per authorization server.
 *
 * Why not the built-in memory adapter: it is an LRU capped at 1000 entries (long tests that
 * refresh every second could see grants evicted, which would look like revocation), and it
 * cannot list grants, which the harness needs to revoke a user's access server-side.
 *
 * Entries are kept as plain objects and expire lazily when read after their TTL.
 */

/** Models whose entries belong to a grant (revoked with it). */
const GRANT_MEMBERS = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

const GRANT_AND_MEMBERS = new Set([...GRANT_MEMBERS, 'Grant']);

type Payload = Record<string, unknown>;

interface Entry {
  model: string;
  id: string;
  payload: Payload;
  expiresAt: number;
}

export class ProviderStorage {
  readonly #entries = new Map<string, Entry>();

  /** The adapter factory to pass as oidc-provider's `adapter` option. */
  readonly adapterFactory = (model: string): ModelAdapter => new ModelAdapter(model, this);

  get(model: string, id: string): Payload | undefined {
    const key = `${model}:${id}`;
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  set(model: string, id: string, payload: Payload, expiresInSeconds: number | undefined): void {
    const expiresAt = expiresInSeconds === undefined ? Infinity : Date.now() + expiresInSeconds * 1000;
    this.#entries.set(`${model}:${id}`, { model, id, payload, expiresAt });
  }

  delete(model: string, id: string): void {
    this.#entries.delete(`${model}:${id}`);
  }

  find(model: string, predicate: (payload: Payload) => boolean): Payload | undefined {
    for (const entry of this.#entries.values()) {
      if (entry.model === model && entry.expiresAt > Date.now() && predicate(entry.payload))
        return entry.payload;
    }
    return undefined;
  }

  /** Delete every entry of `model` (e.g. 'Client': the AS forgets its dynamically registered clients). */
  deleteModel(model: string): number {
    let deleted = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.model === model && this.#entries.delete(key)) deleted++;
    }
    return deleted;
  }

  /** Delete the grant's entries of `models` (default: every token kind and the grant itself). */
  revokeGrant(grantId: string, models: ReadonlySet<string> = GRANT_AND_MEMBERS): void {
    for (const [key, entry] of this.#entries) {
      if (!models.has(entry.model)) continue;
      const owner = entry.model === 'Grant' ? entry.id : entry.payload['grantId'];
      if (owner === grantId) this.#entries.delete(key);
    }
  }

  /** Ids of live grants, optionally only those of one subject (oidc-provider's accountId). */
  grantIds(subject?: string): string[] {
    const ids: string[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.model !== 'Grant' || entry.expiresAt <= Date.now()) continue;
      if (subject === undefined || entry.payload['accountId'] === subject) ids.push(entry.id);
    }
    return ids;
  }
}

/** The per-model adapter interface oidc-provider calls. */
class ModelAdapter {
  constructor(
    private readonly model: string,
    private readonly storage: ProviderStorage,
  ) {}

  async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
    this.storage.set(this.model, id, payload, expiresIn);
  }

  async find(id: string): Promise<Payload | undefined> {
    return this.storage.get(this.model, id);
  }

  async findByUserCode(userCode: string): Promise<Payload | undefined> {
    return this.storage.find(this.model, (p) => p['userCode'] === userCode);
  }

  async findByUid(uid: string): Promise<Payload | undefined> {
    return this.storage.find(this.model, (p) => p['uid'] === uid);
  }

  async consume(id: string): Promise<void> {
    const payload = this.storage.get(this.model, id);
    if (payload !== undefined) payload['consumed'] = Math.floor(Date.now() / 1000);
  }

  async destroy(id: string): Promise<void> {
    this.storage.delete(this.model, id);
  }

  /**
   * Only this model's entries: oidc-provider calls this per token kind and destroys the
   * Grant itself separately, as its revokeGrantPolicy decides.
   */
  async revokeByGrantId(grantId: string): Promise<void> {
    this.storage.revokeGrant(grantId, new Set([this.model]));
  }
}
