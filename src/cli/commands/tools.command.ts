import type { Command } from 'commander';

import type { CliContext } from '../context.js';
import { addConnectionFlags, type ConnectionFlags, jsonOption } from '../flags.js';

export function register(program: Command, { io }: CliContext): void {
  const command = program
    .command('tools')
    .description('list the tools of a remote MCP server, with your stored credential')
    .argument('<server>', 'MCP server URL')
    .addOption(jsonOption('the tools/list result, schemas included'));
  addConnectionFlags(command)
    .addHelpText(
      'after',
      "\nNever starts a login: without a credential it exits 4 and names the login command.\n\nExamples:\n  latchkey tools https://mcp.example.com/mcp\n  latchkey tools https://mcp.example.com/mcp --json | jq '.tools[].name'",
    )
    .action(async (server: string, opts: ConnectionFlags & { json: boolean }) => {
      const { runTools } = await import('./tools.js');
      await runTools(io, server, opts);
    });
}
