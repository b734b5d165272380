import { renderUnicodeCompact } from 'uqr';

import { printable } from '../network-text.js';
import type { DevicePrompt } from '../oauth/types.js';

/**
 * What the user sees during a device login: where to go, the code to type and a QR code of
 * the link (with the code filled in when the AS provides that). It goes to stderr, never
 * stdout: stdout carries data (`latchkey token`) and, in the proxy, MCP messages only.
 */
export interface DevicePromptRenderOptions {
  /** The MCP server being logged in to, named in the first line. */
  server?: string;
  /** Include the QR code. Default true. */
  qr?: boolean;
  /** For tests: the current time, used to say how long the code lasts. */
  now?: number;
}

export function renderDevicePrompt(prompt: DevicePrompt, options: DevicePromptRenderOptions = {}): string {
  const uri = printable(prompt.verificationUri);
  const complete =
    prompt.verificationUriComplete === undefined ? undefined : printable(prompt.verificationUriComplete);
  const lines = [
    options.server === undefined
      ? 'To sign in, open this page on any device:'
      : `To sign in to ${printable(options.server)}, open this page on any device:`,
    '',
    `  ${uri}`,
    '',
    `and enter the code:  ${printable(prompt.userCode)}`,
  ];
  if (options.qr ?? true) {
    lines.push(
      '',
      complete === undefined ? 'Or scan this QR code:' : 'Or scan this QR code (the code is filled in):',
    );
    lines.push(renderUnicodeCompact(complete ?? uri, { border: 2 }));
  } else if (complete !== undefined) {
    lines.push('', `Or open ${complete} directly.`);
  }
  lines.push('', `The code expires in ${describeRemaining(prompt.expiresAt - (options.now ?? Date.now()))}.`);
  return lines.join('\n') + '\n';
}

/** A `prompt` callback for deviceAuthorization that writes the prompt to stderr. */
export function stderrDevicePrompt(
  options: DevicePromptRenderOptions & { write?: (text: string) => void } = {},
): (prompt: DevicePrompt) => void {
  const write = options.write ?? ((text: string) => void process.stderr.write(text));
  return (prompt) => write(renderDevicePrompt(prompt, options));
}

function describeRemaining(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 90) return `${seconds} seconds`;
  return `${Math.round(seconds / 60)} minutes`;
}
