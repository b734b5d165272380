import type { Command } from 'commander';

import { ErrorCode, LatchkeyError } from '../../errors.js';
import type { CliContext } from '../context.js';

export function register(program: Command, { io }: CliContext): void {
  program
    .command('logout')
    .description('revoke the tokens at the authorization server (RFC 7009) and delete them locally')
    .argument('[server]', "MCP server URL (with --idp: the identity provider's issuer)")
    .option(
      '--idp',
      'log out of an enterprise identity provider session and every server authorized through it',
      false,
    )
    .option('--all', 'log out of every server with a stored credential', false)
    .option('--strict', 'keep the local credential if revocation fails, so you can retry', false)
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey logout https://mcp.example.com/mcp\n  latchkey logout --all --strict',
    )
    .action(async (server: string | undefined, opts: { strict: boolean; all: boolean; idp: boolean }) => {
      if ((server === undefined) === !opts.all) {
        throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'name one server, or pass --all (not both).', {
          retryable: false,
        });
      }
      if (opts.idp && server === undefined) {
        throw new LatchkeyError(ErrorCode.INVALID_INPUT, "--idp needs the identity provider's issuer.", {
          retryable: false,
        });
      }
      const { runLogout } = await import('./logout.js');
      await runLogout(io, server, opts);
    });
}
