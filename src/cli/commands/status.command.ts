import type { Command } from 'commander';

import { canonicalServer } from '../../credential/key.js';
import type { CliContext } from '../context.js';
import { jsonOption } from '../flags.js';

export function register(program: Command, { io }: CliContext): void {
  program
    .command('status')
    .description('show stored credentials and their state')
    .argument('[server]', 'only this MCP server URL')
    .addOption(jsonOption('machine-readable output'))
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey status\n  latchkey status https://mcp.example.com/mcp --json',
    )
    .action(async (server: string | undefined, opts: { json: boolean }) => {
      const { runStatus } = await import('./status.js');
      await runStatus(io, {
        ...(server === undefined ? {} : { server: canonicalServer(server) }),
        json: opts.json,
      });
    });
}
