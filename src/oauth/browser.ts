import { spawn } from 'node:child_process';

import { ErrorCode, LatchkeyError } from '../errors.js';

/** Opens a URL for the user. Replaceable, e.g. by a test driving headless Chromium. */
export type BrowserOpener = (url: string) => Promise<void>;

/**
 * Open `url` in the user's browser without a shell: the URL is one argv element of a fixed
 * program, so a hostile authorization URL cannot inject commands. Only http(s) URLs are
 * opened at all (no `file:`, `javascript:` or custom schemes from server metadata).
 *
 * `BROWSER` (as in many Unix tools) names the program to use; it is run directly, also
 * without a shell.
 */
export const openSystemBrowser: BrowserOpener = async (url) => {
  assertWebUrl(url);
  const [command, args] = browserCommand(url, process.env['BROWSER']);
  await new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'ignore', detached: true, shell: false });
    child.once('error', (cause) =>
      reject(
        new LatchkeyError(ErrorCode.INVALID_INPUT, `could not start a browser (${command}).`, {
          retryable: false,
          nextStep: 'open the URL printed above yourself, or use `--device` on a machine without a browser',
          cause,
        }),
      ),
    );
    child.once('spawn', () => {
      child.unref();
      resolve();
    });
  });
};

export function assertWebUrl(url: string): void {
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    protocol = '';
  }
  if (protocol !== 'https:' && protocol !== 'http:') {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'refusing to open a non-http(s) URL in the browser.', {
      retryable: false,
    });
  }
}

function browserCommand(url: string, override: string | undefined): [string, string[]] {
  if (override !== undefined && override !== '') return [override, [url]];
  if (process.platform === 'darwin') return ['open', [url]];
  // rundll32 takes the URL as one argument and involves no cmd.exe parsing.
  if (process.platform === 'win32') return ['rundll32', ['url.dll,FileProtocolHandler', url]];
  return ['xdg-open', [url]];
}
