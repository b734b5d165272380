import type { Command } from 'commander';

import type { CliContext } from '../context.js';

export function register(program: Command, { io }: CliContext): void {
  program
    .command('reconnect')
    .description('make running proxies drop their sessions and connect again with the current credential')
    .argument('[server]', 'only this MCP server URL (default: every server)')
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey reconnect\n  latchkey reconnect https://mcp.example.com/mcp',
    )
    .action(async (server: string | undefined) => {
      const { runReconnect } = await import('./reconnect.js');
      await runReconnect(io, server);
    });
}
