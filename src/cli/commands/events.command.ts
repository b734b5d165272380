import type { Command } from 'commander';

import { canonicalServer } from '../../credential/key.js';
import type { CliContext } from '../context.js';
import { jsonOption, parseCount } from '../flags.js';

export function register(program: Command, { io }: CliContext): void {
  program
    .command('events')
    .description('show the lifecycle event log (logins, refreshes, failures, logouts); never holds secrets')
    .argument('[server]', 'only this MCP server URL')
    .addOption(jsonOption('one JSON object per line'))
    .option('-f, --follow', 'keep printing new events until interrupted', false)
    .option('-n, --limit <n>', 'how many past events to show', parseCount, 50)
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey events https://mcp.example.com/mcp\n  latchkey events --follow --json',
    )
    .action(async (server: string | undefined, opts: { json: boolean; follow: boolean; limit: number }) => {
      const { runEvents } = await import('./events.js');
      await runEvents(io, { ...opts, ...(server === undefined ? {} : { server: canonicalServer(server) }) });
    });
}
