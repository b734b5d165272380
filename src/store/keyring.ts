import { ErrorCode, LatchkeyError } from '../errors.js';

/**
 * The OS keyring (macOS Keychain, Windows Credential Manager, Secret Service on Linux)
 * through @napi-rs/keyring. Every call has a deadline: a keyring that shows an unlock
 * prompt nobody answers, or a Secret Service that never replies on D-Bus, must not hang
 * a token request forever.
 */
export interface KeyringSlot {
  get(): Promise<string | undefined>;
  set(value: string): Promise<void>;
  delete(): Promise<boolean>;
}

export const KEYRING_SERVICE = 'latchkey';
export const DEFAULT_KEYRING_TIMEOUT_MS = 3000;

export async function keyringSlot(
  account: string,
  timeoutMs = DEFAULT_KEYRING_TIMEOUT_MS,
): Promise<KeyringSlot> {
  // Imported lazily: the native module costs start-up time, and processes that get their
  // key from LATCHKEY_KEY never need it.
  const { AsyncEntry } = await import('@napi-rs/keyring');
  // Pinned to the Secret Service on Linux. Falling back to the kernel keyring would keep
  // the key only until reboot, and the user would lose every credential then.
  let entry: InstanceType<typeof AsyncEntry>;
  try {
    entry = new AsyncEntry(KEYRING_SERVICE, account, { linux: { store: 'secret-service' } });
  } catch (cause) {
    // Pinning fails at construction when no Secret Service can be reached at all.
    throw keyringUnavailable(`no OS keyring is reachable (${String((cause as Error).message)})`, cause);
  }
  return {
    get: () => withDeadline(timeoutMs, (signal) => entry.getPassword(signal)).then((v) => v ?? undefined),
    set: (value) => withDeadline(timeoutMs, (signal) => entry.setPassword(value, signal)),
    delete: () => withDeadline(timeoutMs, (signal) => entry.deleteCredential(signal)),
  };
}

async function withDeadline<T>(timeoutMs: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(keyringUnavailable(`the OS keyring did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([run(controller.signal), deadline]);
  } catch (cause) {
    if (cause instanceof LatchkeyError) throw cause;
    throw keyringUnavailable(
      `the OS keyring refused the request (${String((cause as Error).message)})`,
      cause,
    );
  } finally {
    clearTimeout(timer);
  }
}

function keyringUnavailable(message: string, cause?: unknown): LatchkeyError {
  return new LatchkeyError(ErrorCode.KEYRING_UNAVAILABLE, message, {
    retryable: true,
    next: {
      kind: 'configure',
      detail:
        'unlock the OS keyring (on Linux, start a Secret Service such as gnome-keyring), or set LATCHKEY_KEY on headless machines',
    },
    cause,
  });
}
