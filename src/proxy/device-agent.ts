/**
 * A device login that outlives the proxy that started it.
 *
 * A host whose `initialize` fails closes the proxy within seconds (the MCP SDK's stdio client
 * ends stdin, then SIGTERM, then SIGKILL). A device login running inside that proxy would
 * die with it, and the code the host showed the user would lead nowhere: each restart would
 * show a new code. So the proxy runs device logins in a detached agent process (the same
 * command line plus `--login-agent`), which publishes its prompt to the store as a
 * `device-prompt` event and stores the credential once the user approves. Every proxy for the
 * server, including one started after the approval or while the agent still waits, shows
 * that same prompt and picks the credential up from the store.
 *
 * The event carries the verification URL, the user code and its expiry: what the user is
 * shown anyway, never the device code or a token.
 */
import { EventType, type CredentialStore, type LifecycleEvent } from '../store/contract.js';
import { recentEvents } from '../store/recent-events.js';
import type { CredentialManager } from '../lifecycle/manager.js';
import type { DevicePrompt } from '../oauth/types.js';
import { isUserFacingUrl } from '../oauth/loopback.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import { loginAction } from '../next-action.js';

export interface DeviceAgentOptions {
  manager: CredentialManager;
  store: CredentialStore;
  server: string;
  /** Start the detached agent; returns its pid. */
  spawnAgent(): number | undefined;
  /** How often to check that the agent is still alive. Default 500 ms. */
  pollMs?: number;
  /** How long to wait for the agent's prompt before giving up. Default 30 s. */
  promptTimeoutMs?: number;
}

/**
 * How far back, in events of all servers, a pending prompt is looked for. A device code lives
 * minutes; a thousand events in that time would be a storm.
 */
const SCAN = 1000;

/**
 * Run (or join) the server's device login through an agent. `onPrompt` gets the prompt as
 * soon as it is known; the promise settles when the credential is stored, or fails when the
 * agent ends without one or the code expires.
 */
export async function deviceLoginThroughAgent(
  options: DeviceAgentOptions,
  onPrompt: (prompt: DevicePrompt) => void,
): Promise<void> {
  const { manager, server } = options;
  let pending = await pendingPrompt(options.store, server);
  const pid = pending?.pid ?? options.spawnAgent();
  if (pending !== undefined) onPrompt(pending.prompt);
  const startedAt = Date.now();
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (error?: unknown): void => {
      if (settled) return;
      settled = true;
      clearInterval(timer);
      manager.off('event', onEvent);
      if (error === undefined) resolve();
      else reject(error instanceof Error ? error : new Error(String(error)));
    };
    const onEvent = (event: LifecycleEvent): void => {
      if (event.server !== server) return;
      if (event.type === EventType.ACQUIRED) finish();
      if (isLogout(event)) finish(ended(server, 'you logged out, which cancelled it'));
      if (event.type === EventType.DEVICE_LOGIN_FAILED && event.pid === (pending?.pid ?? pid))
        finish(
          ended(server, `the device login failed (${String(event.detail?.['code'] ?? 'unknown error')})`),
        );
      const prompt = promptOf(event);
      if (prompt !== undefined && pending === undefined) {
        pending = { prompt, pid: event.pid };
        onPrompt(prompt);
      }
    };
    manager.on('event', onEvent);
    const timer = setInterval(() => {
      void (async () => {
        if (await hasCredential(manager, server)) return finish();
        const agent = pending?.pid ?? pid;
        if (pending !== undefined && pending.prompt.expiresAt <= Date.now()) {
          return finish(ended(server, 'the device code expired before it was approved'));
        }
        if (agent !== undefined && !alive(agent)) {
          if (await hasCredential(manager, server)) return finish();
          return finish(ended(server, 'the device login ended without a credential'));
        }
        if (pending === undefined && Date.now() - startedAt > (options.promptTimeoutMs ?? 30_000)) {
          finish(ended(server, 'the device login did not start'));
        }
      })();
    }, options.pollMs ?? 500);
    timer.unref();
  });
}

/** The newest unexpired prompt for `server` whose agent is still running, if any. */
export async function pendingPrompt(
  store: CredentialStore,
  server: string,
): Promise<{ prompt: DevicePrompt; pid: number } | undefined> {
  const events = await recentEvents(store, SCAN, server);
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i];
    if (event === undefined) continue;
    // A login, a newer login replacing this one, or a logout after the prompt makes it stale.
    if (event.type !== EventType.DEVICE_PROMPT) {
      if (event.type === EventType.ACQUIRED || event.type === EventType.LOGIN_STARTED || isLogout(event))
        return undefined;
      continue;
    }
    const prompt = promptOf(event);
    if (prompt === undefined || prompt.expiresAt <= Date.now() || !alive(event.pid)) return undefined;
    return { prompt, pid: event.pid };
  }
  return undefined;
}

/**
 * `latchkey logout` while a device login waits: an approval that comes later must not log the
 * user back in. A logout that deleted a credential has already appended its event, which the
 * agent reacts to; otherwise this appends one. Returns the prompt it cancelled.
 */
export async function cancelDeviceLogin(
  store: CredentialStore,
  server: string,
  subject: string,
  pending: { prompt: DevicePrompt } | undefined,
  loggedOut: boolean,
): Promise<DevicePrompt | undefined> {
  if (pending === undefined) return undefined;
  if (!loggedOut) {
    await store.appendEvent({
      type: EventType.DELETED,
      server,
      issuer: '',
      subject,
      detail: { reason: 'device-login-cancelled' },
    });
  }
  return pending.prompt;
}

/** Servers whose device login is waiting for the user (for `latchkey logout --all`). */
export async function serversAwaitingDeviceLogin(store: CredentialStore): Promise<string[]> {
  const events = await recentEvents(store, SCAN);
  const prompted = new Set(events.filter((e) => e.type === EventType.DEVICE_PROMPT).map((e) => e.server));
  const waiting: string[] = [];
  for (const server of prompted) if ((await pendingPrompt(store, server)) !== undefined) waiting.push(server);
  return waiting;
}

/** The event the agent appends when its login fails: the code only, never a message from the network. */
export function deviceLoginFailedEvent(server: string, subject: string, error: unknown) {
  const code = isLatchkeyError(error) ? error.code : 'UNEXPECTED';
  return { type: EventType.DEVICE_LOGIN_FAILED, server, issuer: '', subject, detail: { code } };
}

/** A logout of the server, by `latchkey logout` (revoked at the AS, or only deleted). */
export function isLogout(event: LifecycleEvent): boolean {
  return event.type === EventType.DELETED || event.type === EventType.REVOKED;
}

/** The event the agent appends when the authorization server hands out a code. */
export function devicePromptEvent(server: string, subject: string, prompt: DevicePrompt) {
  return {
    type: EventType.DEVICE_PROMPT,
    server,
    issuer: '',
    subject,
    detail: {
      verificationUri: prompt.verificationUri,
      userCode: prompt.userCode,
      expiresAt: prompt.expiresAt,
      ...(prompt.verificationUriComplete === undefined
        ? {}
        : { verificationUriComplete: prompt.verificationUriComplete }),
    },
  };
}

function promptOf(event: LifecycleEvent): DevicePrompt | undefined {
  if (event.type !== EventType.DEVICE_PROMPT || event.detail === undefined) return undefined;
  const { verificationUri, userCode, expiresAt, verificationUriComplete } = event.detail;
  if (typeof verificationUri !== 'string' || typeof userCode !== 'string' || typeof expiresAt !== 'number')
    return undefined;
  // Written by a device login that checked it already; a store edited by hand is not trusted.
  if (!isUserFacingUrl(verificationUri)) return undefined;
  if (typeof verificationUriComplete === 'string' && !isUserFacingUrl(verificationUriComplete))
    return undefined;
  return {
    verificationUri,
    userCode,
    expiresAt,
    ...(typeof verificationUriComplete === 'string' ? { verificationUriComplete } : {}),
  };
}

async function hasCredential(manager: CredentialManager, server: string): Promise<boolean> {
  try {
    await manager.getToken(server, { interactive: false });
    return true;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else; still alive.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ended(server: string, reason: string): LatchkeyError {
  return new LatchkeyError(ErrorCode.LOGIN_REQUIRED, `login required: ${reason}.`, {
    server,
    retryable: false,
    next: loginAction(server, { device: true, detail: 'or send the request again for a new code' }),
  });
}
