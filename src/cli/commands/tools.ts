import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { z } from 'zod';

import { asLatchkeyError } from '../../mcp/client.js';
import { networkText, printable } from '../../network-text.js';
import { withClient } from '../client-session.js';
import type { ConnectionFlags } from '../flags.js';
import type { CliIO } from '../io.js';

/** Pages followed at most; a server that keeps handing out cursors is cut off here. */
const MAX_PAGES = 100;

interface ListedTool {
  name: string;
  description?: unknown;
}

/**
 * A tools/list page, read without rebuilding the tools: the SDK's own result schema
 * (`client.listTools()`) recreates every `inputSchema` with its known keys first, so `--json`
 * would print a reordered schema. Here each tool is checked (an object with a string name)
 * and kept as the server sent it, keyword for keyword and in its order.
 */
const ToolsPage = z.looseObject({
  tools: z.array(
    z.custom<ListedTool>(
      (tool) =>
        typeof tool === 'object' && tool !== null && typeof (tool as { name?: unknown }).name === 'string',
      'a tool without a name',
    ),
  ),
  nextCursor: z.string().optional(),
});

/** `latchkey tools <server>`: never starts a login. */
export async function runTools(
  io: CliIO,
  server: string,
  options: ConnectionFlags & { json: boolean },
): Promise<void> {
  await withClient(io, server, options, (client, url) => tools(client, io, url, options));
}

/**
 * List the server's tools on stdout: one `name  description` line each, or with `--json`
 * the tools/list result (every page merged) as one JSON document.
 */
export async function tools(
  client: Client,
  io: CliIO,
  server: string,
  options: { json: boolean },
): Promise<void> {
  const all: ListedTool[] = [];
  let cursor: string | undefined;
  try {
    for (let page = 0; page < MAX_PAGES; page++) {
      const params = cursor === undefined ? {} : { cursor };
      const result = await client.request({ method: 'tools/list', params }, ToolsPage);
      all.push(...result.tools);
      cursor = result.nextCursor;
      if (cursor === undefined) break;
    }
  } catch (error) {
    throw asLatchkeyError(server, error);
  }
  if (options.json) {
    io.out(JSON.stringify({ tools: all }, null, 2) + '\n');
    return;
  }
  if (all.length === 0) io.err(`${server} offers no tools.\n`);
  const width = Math.max(0, ...all.map((t) => printable(t.name).length));
  for (const tool of all) {
    // Names and descriptions are the server's words, printed to a terminal.
    const description = typeof tool.description === 'string' ? tool.description : '';
    const summary = networkText(description.split('\n')[0] ?? '').trim();
    io.out(`${printable(tool.name).padEnd(width)}  ${summary}`.trimEnd() + '\n');
  }
}
