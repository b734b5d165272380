import type { Command } from 'commander';

import { ErrorCode, LatchkeyError } from '../../errors.js';
import type { CliContext } from '../context.js';
import { parseSeconds } from '../flags.js';

export function register(program: Command, { io }: CliContext): void {
  program
    .command('demo')
    .description(
      'a one-minute tour on this machine: login, a tool call, a silent refresh, status, a real logout',
    )
    .option('--by-hand', 'sign in yourself, in a browser on this machine (default: the demo does it)')
    .option('--auto', 'the demo signs in for you (the default; kept for scripts that pass it)')
    .option('--token-seconds <n>', 'lifetime of the demo access tokens', parseSeconds, 5)
    .addHelpText(
      'after',
      '\nRuns a real OAuth authorization server and MCP server on 127.0.0.1 and a throw-away store;\nnothing is left behind.\n\nExamples:\n  latchkey demo\n  latchkey demo --by-hand',
    )
    .action(async (opts: { auto?: boolean; byHand?: boolean; tokenSeconds: number }) => {
      if (opts.auto === true && opts.byHand === true) {
        throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'pick one of --auto and --by-hand.', {
          retryable: false,
        });
      }
      // The demo's servers (oidc-provider, the MCP SDK) load with it, for this command only.
      const { demo } = await import('./demo.js');
      await demo(io, { byHand: opts.byHand === true, tokenSeconds: Math.round(opts.tokenSeconds) });
    });
}
