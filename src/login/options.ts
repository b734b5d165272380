import type { ClientConfig, DevicePrompt } from '../oauth/types.js';
import type { CredentialStore } from '../store/contract.js';
import type { BrowserOpener } from './browser.js';
import type { IdpSource } from './enterprise.js';

/** What `createLoginHook` is configured with; shared by every login strategy. */
export type LoginFlow = 'browser' | 'device' | 'client-credentials' | 'workload-identity' | 'enterprise';

/**
 * Options some identity providers need. Each deviates from the MCP spec for one provider's
 * sake, so all are off by default.
 */
export interface IdpQuirks {
  /** Extra authorization request parameters, e.g. `{ access_type: 'offline', prompt: 'consent' }` (Google). */
  extraAuthorizationParams?: Readonly<Record<string, string>>;
  /** Do not send RFC 8707 `resource` (Microsoft Entra v2 rejects it with AADSTS9010010). */
  omitResource?: boolean;
  /** Ask for `offline_access` when the AS lists it in `scopes_supported` (Okta, Entra, Auth0). */
  offlineAccess?: boolean;
  /** Send this RFC 8707 `resource` instead of the one the server's metadata names. */
  resource?: string;
}

export interface LoginOptions {
  store: CredentialStore;
  /**
   * How to log in. Default `auto`: the browser where one can be shown, else the device flow
   * (over SSH, in containers, with no display). `client-credentials` needs a confidential client;
   * `workload-identity` a client id and `client.workloadTokenFile` (RFC 7523 JWT bearer grant).
   */
  flow?: LoginFlow | 'auto';
  /**
   * An enterprise IdP session (SEP-990). With it, a server whose AS accepts the JWT bearer
   * grant is authorized with an ID-JAG from the IdP instead of a browser, unless `flow`
   * names another flow; `flow: 'enterprise'` requires it. A function is asked at each login
   * (the CLI looks for a stored `login --idp` session: `storedIdpSession`). Default: none.
   */
  idp?: IdpSource | (() => Promise<IdpSource | undefined>);
  /**
   * The issuer of an enterprise IdP to sign in to (`login --idp`): a login for this URL is
   * the IdP session's own (OpenID sign-in, no MCP discovery), not a server's. Default none.
   */
  idpLogin?: string;
  /** Pre-registered client, CIMD URL, name. Default: register dynamically as `latchkey`. */
  client?: ClientConfig;
  /** Default: the system browser, started without a shell. */
  openBrowser?: BrowserOpener;
  /** Where human-facing lines go. Default: stderr (never stdout). */
  notify?: (text: string) => void;
  /**
   * Told when discovery accepts a 2025-03-26 server by a rule later revisions forbid (see
   * src/oauth/legacy-discovery.ts); the text names the server and the risk. Default: the
   * redacting logger at `warn`, on stderr.
   */
  warn?: (text: string) => void;
  /**
   * Told the device-flow instructions as well as printing them, so a caller that must not
   * block (the proxy) can hand them to its host.
   */
  onDevicePrompt?: (prompt: DevicePrompt, server: string) => void;
  /**
   * Told when the browser could not be started (no BROWSER, no display, a missing program),
   * after the user has been told on `notify`. The login goes on waiting for the redirect, so
   * a caller that must not block (the proxy) can hand the URL to its host.
   */
  onBrowserUnavailable?: (url: string, server: string) => void;
  /** Fixed loopback redirect port. Default: a stable port per server, else any free one. */
  redirectPort?: number;
  /** Redirect URI host name, for pre-registered clients. Default `127.0.0.1`. */
  redirectHost?: '127.0.0.1' | 'localhost';
  /** Redirect URI path, for pre-registered clients. Default `/callback`. */
  redirectPath?: string;
  quirks?: IdpQuirks;
  fetch?: typeof fetch;
  /** How long the user has to finish in the browser or on the other device. Default 300 000 ms. */
  timeoutMs?: number;
  /** Timeout of each request to the AS. Default 30 000 ms. */
  requestTimeoutMs?: number;
  /** Interactive attempts allowed per server in 10 minutes before the breaker opens. Default 5. */
  maxAttempts?: number;
}
