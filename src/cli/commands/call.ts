import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

import { ErrorCode, LatchkeyError } from '../../errors.js';
import { asLatchkeyError } from '../../mcp/client.js';
import { withClient } from '../client-session.js';
import type { ConnectionFlags } from '../flags.js';
import type { CliIO } from '../io.js';

export interface CallOptions {
  tool: string;
  /** The arguments, already checked (see parseToolArguments). */
  arguments: Record<string, unknown>;
  json: boolean;
}

/** `latchkey call <server> <tool> [arguments]`, the arguments already checked; never starts a login. */
export async function runCall(
  io: CliIO,
  server: string,
  options: CallOptions & { connection: ConnectionFlags },
): Promise<void> {
  await withClient(io, server, options.connection, (client, url) => call(client, io, url, options));
}

/**
 * Call one tool and print its result: the text content on stdout (other content as a short
 * `[kind ...]` line), or with `--json` the whole tools/call result. A result flagged
 * `isError` is printed the same way and fails the command, so scripts can test `$?`.
 */
export async function call(client: Client, io: CliIO, server: string, options: CallOptions): Promise<void> {
  let result: CallToolResult;
  try {
    result = (await client.callTool({ name: options.tool, arguments: options.arguments })) as CallToolResult;
  } catch (error) {
    const failure = asLatchkeyError(server, error);
    throw new LatchkeyError(
      failure.code,
      `tool ${JSON.stringify(options.tool)}: ${error instanceof Error ? error.message : String(error)}`,
      {
        server,
        retryable: failure.retryable,
        next: {
          kind: 'configure',
          detail: `list the tools and their arguments with \`latchkey tools ${server}\``,
        },
        cause: error,
      },
    );
  }
  if (options.json) io.out(JSON.stringify(result, null, 2) + '\n');
  else io.out(render(result));
  if (result.isError === true) {
    throw new LatchkeyError(ErrorCode.MCP_FAILED, `tool ${JSON.stringify(options.tool)} returned an error.`, {
      server,
      retryable: false,
    });
  }
}

function render(result: CallToolResult): string {
  const lines = result.content.map((part) => {
    switch (part.type) {
      case 'text':
        return part.text;
      case 'image':
      case 'audio':
        return `[${part.type} ${part.mimeType}, ${Math.floor((part.data.length * 3) / 4)} bytes]`;
      case 'resource_link':
        return `[resource link ${part.uri}]`;
      case 'resource':
        return 'text' in part.resource && typeof part.resource.text === 'string'
          ? part.resource.text
          : `[resource ${part.resource.uri}]`;
      default:
        return `[${(part as { type: string }).type}]`;
    }
  });
  if (lines.length === 0 && result.structuredContent !== undefined) {
    lines.push(JSON.stringify(result.structuredContent, null, 2));
  }
  return lines.map((line) => line + '\n').join('');
}
