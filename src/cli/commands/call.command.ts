import type { Command } from 'commander';

import type { CliContext } from '../context.js';
import { addConnectionFlags, type ConnectionFlags, jsonOption } from '../flags.js';
import { checkedServer } from '../server-args.js';
import { parseToolArguments } from '../tool-arguments.js';

export function register(program: Command, { io }: CliContext): void {
  const command = program
    .command('call')
    .description('call one tool of a remote MCP server and print its result')
    .argument('<server>', 'MCP server URL')
    .argument('<tool>', 'tool name (see `latchkey tools`)')
    .argument('[arguments]', 'the arguments as a JSON object, or - to read them from stdin', '{}')
    .addOption(jsonOption('print the whole tools/call result as JSON'));
  addConnectionFlags(command)
    .addHelpText(
      'after',
      '\nText content goes to stdout; a result flagged isError exits 1. Never starts a login.\nThe arguments are checked before anything connects: malformed JSON exits 2.\n\nExamples:\n  latchkey call https://mcp.example.com/mcp echo \'{"text": "hi"}\'\n  echo \'{"text": "hi"}\' | latchkey call https://mcp.example.com/mcp echo - --json',
    )
    .action(async (server: string, tool: string, args: string, opts: ConnectionFlags & { json: boolean }) => {
      const argumentsJson = args === '-' ? await readAll(io.stdin ?? process.stdin) : args;
      const toolArguments = parseToolArguments(checkedServer(server), argumentsJson);
      const { runCall } = await import('./call.js');
      await runCall(io, server, { tool, arguments: toolArguments, json: opts.json, connection: opts });
    });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}
