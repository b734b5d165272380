/**
 * An authenticated MCP SDK client for `tools` and `call`: loaded by their work modules only,
 * since it brings the MCP SDK.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';

import { connectMcpClient } from '../mcp/client.js';
import type { ConnectionFlags } from './flags.js';
import type { CliIO } from './io.js';
import { checkedServer, parseHeaders } from './server-args.js';
import { withManager } from './session.js';
import { VERSION } from './version.js';

/** Connect an authenticated SDK client for one command, and close everything after. */
export async function withClient(
  io: CliIO,
  server: string,
  opts: ConnectionFlags,
  run: (client: Client, server: string) => Promise<void>,
): Promise<void> {
  const url = checkedServer(server);
  const headers = parseHeaders(opts.header, io.env, url);
  await withManager(
    io,
    () => ({}),
    async (manager) => {
      const client = await connectMcpClient(url, {
        manager,
        transport: opts.transport,
        headers,
        requestTimeoutMs: opts.timeout * 1000,
        clientInfo: { name: 'latchkey', version: VERSION },
      });
      try {
        await run(client, url);
      } finally {
        await client.close().catch(() => undefined);
      }
    },
  );
}
