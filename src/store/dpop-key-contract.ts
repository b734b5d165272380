/**
 * The store's DPoP key (RFC 9449), one per store and algorithm: every process on the store
 * signs with it, so a token bound to it keeps working after a restart and in other processes.
 */
export interface DPoPKeyTable {
  /**
   * The stored key for `alg`; when there is none, `create()` is stored and returned. Two
   * processes racing here both get the one that was stored first.
   */
  dpopKey(alg: string, create: () => DPoPKeyRecord): Promise<DPoPKeyRecord>;
}

export interface DPoPKeyRecord {
  alg: string;
  /** The private key as a JWK string: secret, sealed at rest like every token. */
  privateJwk: string;
  createdAt: number;
}
