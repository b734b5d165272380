import { spawn } from 'node:child_process';

import { ErrorCode, LatchkeyError } from '../errors.js';
import { isUserFacingUrl } from '../oauth/loopback.js';

/** Opens a URL for the user. Replaceable, e.g. by a test driving headless Chromium. */
export type BrowserOpener = (url: string) => Promise<void>;

/**
 * Open `url` in the user's browser without a shell: the URL is one argv element of a fixed
 * program, so a hostile authorization URL cannot inject commands. Only https URLs (plain
 * http on loopback) are opened at all: no `file:`, `javascript:` or custom schemes from
 * server metadata.
 *
 * `BROWSER` (as in many Unix tools) names the program to use; it is run directly, also
 * without a shell.
 */
export const openSystemBrowser: BrowserOpener = async (url) => {
  assertWebUrl(url);
  const [command, args] = browserCommand(url, process.env['BROWSER']);
  // Settles when the opener exits: xdg-open, open and rundll32 hand the URL over and exit
  // at once, 0 on success. A non-zero exit (xdg-open with no display to open anything on)
  // or a program that cannot be started at all rejects, so the caller can say so instead
  // of waiting in silence. A BROWSER that stays in the foreground keeps it pending, which
  // is fine: login flows do not await it.
  await new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: 'ignore',
      detached: true,
      shell: false,
      env: browserEnvironment(process.env),
    });
    child.unref();
    child.once('error', (cause) => {
      const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
      reject(
        browserFailure(
          `could not start a browser: ${missing ? `${command} was not found` : cause.message}.`,
          cause,
        ),
      );
    });
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          browserFailure(
            `could not start a browser: ${command} ${code === null ? `was killed (${signal ?? 'signal'})` : `failed with exit code ${code}`}.`,
          ),
        );
    });
  });
};

/**
 * The browser's environment: the user's, minus every `LATCHKEY_*` variable. Some are secrets
 * (LATCHKEY_KEY, LATCHKEY_CLIENT_SECRET) and a browser needs none of them; dropping the whole
 * prefix also covers secrets added later. The browser outlives latchkey and runs extensions
 * and helpers that could read and leak its environment.
 */
export function browserEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !/^LATCHKEY_/i.test(name)));
}

function browserFailure(message: string, cause?: unknown): LatchkeyError {
  return new LatchkeyError(ErrorCode.INVALID_INPUT, message, {
    retryable: false,
    next: {
      kind: 'configure',
      detail:
        'open the printed URL yourself, set BROWSER to a browser program, or use the device flow on a machine without a browser',
    },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** The rule for every URL shown to the user (isUserFacingUrl): https, or http on loopback. */
export function assertWebUrl(url: string): void {
  if (!isUserFacingUrl(url)) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      'refusing to open a URL in the browser that is not https (plain http only on loopback).',
      { retryable: false },
    );
  }
}

function browserCommand(url: string, override: string | undefined): [string, string[]] {
  if (override !== undefined && override !== '') return [override, [url]];
  if (process.platform === 'darwin') return ['open', [url]];
  // rundll32 takes the URL as one argument and involves no cmd.exe parsing.
  if (process.platform === 'win32') return ['rundll32', ['url.dll,FileProtocolHandler', url]];
  return ['xdg-open', [url]];
}
