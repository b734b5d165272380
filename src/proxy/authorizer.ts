/**
 * How the proxy logs in when a request needs it. A browser login is awaited: the user is at
 * the desk and the request simply takes longer. A device login cannot be awaited inside an
 * MCP request (the host would show a spinner for minutes with the code hidden in a log), so
 * the host gets an error carrying the verification URL and code at once, while the login
 * goes on in the background; once approved, the next request goes through.
 *
 * A browser that cannot be started is treated like a device login: the host gets an error
 * carrying the URL to open by hand at once, and the login goes on waiting for the redirect.
 *
 * Logins are single-flight: in this process through one shared promise, across processes
 * through the manager's login lease (duplicate proxies open one browser tab, not four).
 */
import { ErrorCode, type LatchkeyError } from '../errors.js';
import type { CredentialManager } from '../lifecycle/manager.js';
import type { Authorizer } from '../mcp/connection.js';
import type { JsonRpcError } from '../mcp/jsonrpc.js';
import { browserLoginPending, deviceLoginPending, RpcFailure } from '../mcp/rpc-errors.js';
import type { DevicePrompt } from '../oauth/types.js';

export type ProxyLoginPolicy = 'auto' | 'never';

export interface ProxyAuthorizerOptions {
  manager: CredentialManager;
  server: string;
  /** `never`: do not start logins; the host is told to run `latchkey login`. Default `auto`. */
  login?: ProxyLoginPolicy;
  scopes?: readonly string[];
  subject?: string;
  /**
   * Run the login somewhere else (the device agent) instead of through the manager's hook in
   * this process. Gets the prompt callback; settles when the credential is stored.
   */
  runLogin?: (onPrompt: (prompt: DevicePrompt) => void) => Promise<void>;
}

export interface ProxyAuthorizer {
  authorize: Authorizer;
  /** Wire this to the login hook's `onDevicePrompt`. */
  onDevicePrompt(prompt: DevicePrompt, server: string): void;
  /** Wire this to the login hook's `onBrowserUnavailable`. */
  onBrowserUnavailable(url: string, server: string): void;
}

export function createProxyAuthorizer(options: ProxyAuthorizerOptions): ProxyAuthorizer {
  const logins = new ProxyLogins(options);

  async function authorize(error: LatchkeyError, signal: AbortSignal): Promise<void> {
    if (options.login === 'never' || error.code !== ErrorCode.LOGIN_REQUIRED) throw error;
    const login = logins.start();
    const answer = logins.answerNow();
    if (answer !== undefined) throw new RpcFailure(answer);
    await untilDone(login, logins, signal);
  }

  return {
    authorize,
    onDevicePrompt(shown, server) {
      if (server === options.server) logins.showPrompt(shown);
    },
    onBrowserUnavailable(url, server) {
      if (server === options.server) logins.showPending(browserLoginPending(options.server, url));
    },
  };
}

/**
 * The proxy's one login in flight, and what the user must do by hand while it waits: a
 * device code, or the URL of a browser login whose browser could not be started. Either
 * answers the host at once.
 */
class ProxyLogins {
  readonly #options: ProxyAuthorizerOptions;
  #flight: Promise<void> | undefined;
  #pending: JsonRpcError | undefined;
  #prompt: DevicePrompt | undefined;
  readonly #waiters = new Set<(answer: JsonRpcError) => void>();

  constructor(options: ProxyAuthorizerOptions) {
    this.#options = options;
  }

  /** The login in flight, started if there is none. */
  start(): Promise<void> {
    this.#flight ??= this.#login().finally(() => {
      this.#flight = undefined;
      this.#prompt = undefined;
      this.#pending = undefined;
    });
    // Observed by whoever awaits it; a background device login may have no waiter left.
    this.#flight.catch(() => undefined);
    return this.#flight;
  }

  /** What to tell the host right away, if the user has something to do by hand. */
  answerNow(): JsonRpcError | undefined {
    const shown = this.#prompt;
    // An expired device code is not worth showing: the request waits for the next one.
    if (shown !== undefined ? shown.expiresAt <= Date.now() : this.#pending === undefined) return undefined;
    return this.#pending ?? deviceLoginPending(this.#options.server, shown as DevicePrompt);
  }

  showPending(answer: JsonRpcError): void {
    this.#pending = answer;
    for (const waiter of this.#waiters) waiter(answer);
  }

  showPrompt(shown: DevicePrompt): void {
    this.#prompt = shown;
    this.showPending(deviceLoginPending(this.#options.server, shown));
  }

  /** Call `waiter` when something to do by hand appears; returns the unsubscribe. */
  onPending(waiter: (answer: JsonRpcError) => void): () => void {
    this.#waiters.add(waiter);
    return () => this.#waiters.delete(waiter);
  }

  #login(): Promise<void> {
    const { runLogin, manager, server, scopes, subject } = this.#options;
    if (runLogin !== undefined) return runLogin((shown) => this.showPrompt(shown));
    return manager
      .getToken(server, {
        interactive: true,
        ...(scopes === undefined ? {} : { scopes }),
        ...(subject === undefined ? {} : { subject }),
      })
      .then(() => undefined);
  }
}

/**
 * A request waits for the login to finish, but fails at once with the by-hand answer if one
 * appears meanwhile, or with the request's own abort.
 */
async function untilDone(login: Promise<void>, logins: ProxyLogins, signal: AbortSignal): Promise<void> {
  let unsubscribe!: () => void;
  const pendingShown = new Promise<never>((_, reject) => {
    unsubscribe = logins.onPending((answer) => reject(new RpcFailure(answer)));
  });
  pendingShown.catch(() => undefined);
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  try {
    await Promise.race([login, pendingShown, aborted]);
  } finally {
    unsubscribe();
    signal.removeEventListener('abort', onAbort);
  }
}
