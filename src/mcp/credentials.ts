/**
 * What the MCP layer needs from a credential source, and nothing more. The CredentialManager
 * satisfies it; so can anything an embedder writes (a token service, a test double). The
 * layer never reaches into the store behind it.
 */
import type { GetTokenOptions } from '../lifecycle/manager.js';
import type { AccessToken } from '../lifecycle/token-cache.js';
import type { DPoPSigner } from '../oauth/dpop-proof.js';
import type { EventQuery, LifecycleEvent } from '../store/contract.js';

export type { GetTokenOptions } from '../lifecycle/manager.js';

/** Tokens for a server: what the auth fetch and the SDK auth providers ask for. */
export interface TokenSource {
  /** A token valid right now, or a typed error saying what must happen first. */
  getToken(server: string | URL, options?: GetTokenOptions): Promise<AccessToken>;
  /** The bearer string of `getToken`. */
  getAccessToken(server: string | URL, options?: GetTokenOptions): Promise<string>;
  /**
   * The signer for tokens whose `tokenType` is `DPoP` (RFC 9449). A source that never hands
   * out DPoP tokens may leave it out; a DPoP token from a source without it is refused, never
   * sent as a bearer token.
   */
  dpopSigner?(): Promise<DPoPSigner>;
}

/**
 * Tokens plus the credential events every process appends (login, logout, reconnect), which a
 * long-lived connection follows to renew or drop its session without a restart.
 */
export interface McpCredentials extends TokenSource {
  on(event: 'event', listener: (event: LifecycleEvent) => void): unknown;
  off(event: 'event', listener: (event: LifecycleEvent) => void): unknown;
  /** The id of the newest credential event, or 0: older ones are history. */
  lastEventId(): Promise<number>;
  /** Credential events after `afterId`, for catching up on what the watch has not delivered. */
  readEvents(query: EventQuery): Promise<LifecycleEvent[]>;
}
