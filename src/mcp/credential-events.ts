/**
 * Credential changes from any process (a login, a logout, a reconnect request), as they
 * concern one connection. A logout stops the connection's requests; a login, which may be
 * another account, renews its session; a reconnect renews it too.
 */
import { EventType, type LifecycleEvent } from '../store/contract.js';
import type { McpCredentials } from './credentials.js';

export interface CredentialHooks {
  loggedOut(): void;
  loggedIn(wasLoggedOut: boolean): void;
  reconnect(): void;
  closed(): boolean;
}

export class CredentialEvents {
  /** A logout was seen and no login since. */
  loggedOut = false;
  readonly #credentials: McpCredentials;
  readonly #server: string;
  readonly #hooks: CredentialHooks;
  /** The newest event when the connection started: older ones are history. */
  readonly #cursor: Promise<number>;
  #lastEventId: number | undefined;
  readonly #listener = (event: LifecycleEvent): void => this.apply(event);

  constructor(credentials: McpCredentials, server: string, hooks: CredentialHooks) {
    this.#credentials = credentials;
    this.#server = server;
    this.#hooks = hooks;
    this.#cursor = credentials.lastEventId().catch(() => 0);
    credentials.on('event', this.#listener);
  }

  dispose(): void {
    this.#credentials.off('event', this.#listener);
  }

  /**
   * Apply events the store holds that the watch has not delivered yet: a logout elsewhere
   * must be known before a login starts on its heels.
   */
  async catchUp(): Promise<void> {
    const cursor = await this.#cursor;
    const events = await this.#credentials.readEvents({
      server: this.#server,
      afterId: this.#lastEventId ?? cursor,
    });
    for (const event of events) this.apply(event);
  }

  apply(event: LifecycleEvent): void {
    if (this.#lastEventId !== undefined && event.id <= this.#lastEventId) return;
    this.#lastEventId = event.id;
    const everyServer = event.type === EventType.RECONNECT && event.server === '';
    if ((event.server !== this.#server && !everyServer) || this.#hooks.closed()) return;
    if (event.type === EventType.REVOKED || event.type === EventType.DELETED) {
      this.loggedOut = true;
      this.#hooks.loggedOut();
    } else if (event.type === EventType.ACQUIRED) {
      const wasOut = this.loggedOut;
      this.loggedOut = false;
      this.#hooks.loggedIn(wasOut);
    } else if (event.type === EventType.RECONNECT) {
      this.#hooks.reconnect();
    }
  }
}
