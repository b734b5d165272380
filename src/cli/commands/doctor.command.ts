import type { Command } from 'commander';

import type { CliContext } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { jsonOption } from '../flags.js';

export function register(program: Command, { io, setExitCode }: CliContext): void {
  program
    .command('doctor')
    .description(
      'check a server step by step: challenge, metadata, PKCE, registration, revocation, clock, store',
    )
    .argument('<server>', 'MCP server URL')
    .addOption(jsonOption('machine-readable findings'))
    .addHelpText('after', '\nExample:\n  latchkey doctor https://mcp.example.com/mcp')
    .action(async (server: string, opts: { json: boolean }) => {
      const { doctor } = await import('./doctor.js');
      if (!(await doctor(io, server, opts))) setExitCode(ExitCode.ERROR);
    });
}
