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
  let flight: Promise<void> | undefined;
  // What the user must do by hand while the login waits: a device code, or the URL of a
  // browser login whose browser could not be started. Either answers the host at once.
  let pending: JsonRpcError | undefined;
  const pendingWaiters = new Set<(answer: JsonRpcError) => void>();

  function showPending(answer: JsonRpcError): void {
    pending = answer;
    for (const waiter of pendingWaiters) waiter(answer);
  }

  let prompt: DevicePrompt | undefined;
  function showPrompt(shown: DevicePrompt): void {
    prompt = shown;
    showPending(deviceLoginPending(options.server, shown));
  }

  function login(): Promise<void> {
    if (options.runLogin !== undefined) return options.runLogin(showPrompt);
    return options.manager
      .getToken(options.server, {
        interactive: true,
        ...(options.scopes === undefined ? {} : { scopes: options.scopes }),
        ...(options.subject === undefined ? {} : { subject: options.subject }),
      })
      .then(() => undefined);
  }

  function start(): Promise<void> {
    flight ??= login().finally(() => {
      flight = undefined;
      prompt = undefined;
      pending = undefined;
    });
    // Observed by whoever awaits it; a background device login may have no waiter left.
    flight.catch(() => undefined);
    return flight;
  }

  async function authorize(error: LatchkeyError, signal: AbortSignal): Promise<void> {
    if (options.login === 'never' || error.code !== ErrorCode.LOGIN_REQUIRED) throw error;
    const login = start();
    const shown = prompt;
    if (shown !== undefined ? shown.expiresAt > Date.now() : pending !== undefined)
      throw new RpcFailure(pending ?? deviceLoginPending(options.server, shown as DevicePrompt));
    let onPending!: (answer: JsonRpcError) => void;
    const pendingShown = new Promise<never>((_, reject) => {
      onPending = (answer) => reject(new RpcFailure(answer));
    });
    pendingShown.catch(() => undefined);
    pendingWaiters.add(onPending);
    let onAbort!: () => void;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    try {
      await Promise.race([login, pendingShown, aborted]);
    } finally {
      pendingWaiters.delete(onPending);
      signal.removeEventListener('abort', onAbort);
    }
  }

  return {
    authorize,
    onDevicePrompt(shown, server) {
      if (server === options.server) showPrompt(shown);
    },
    onBrowserUnavailable(url, server) {
      if (server === options.server) showPending(browserLoginPending(options.server, url));
    },
  };
}
