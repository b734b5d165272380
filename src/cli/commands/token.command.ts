import type { Command } from 'commander';

import type { CliContext } from '../context.js';

export function register(program: Command, { io }: CliContext): void {
  program
    .command('token')
    .description('print a valid access token for a server on stdout (refreshing it if needed)')
    .argument('<server>', 'MCP server URL')
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey token https://mcp.example.com/mcp\n  curl -H "Authorization: Bearer $(latchkey token https://mcp.example.com/mcp)" https://mcp.example.com/mcp',
    )
    .action(async (server: string) => {
      const { runToken } = await import('./token.js');
      await runToken(io, server);
    });
}
