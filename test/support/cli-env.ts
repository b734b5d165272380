// What most CLI tests stand on: the real AS, the real MCP server on it, and a fresh
// LATCHKEY_HOME with a key of its own for the CLI under test; close() removes all of it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  type AuthorizationServerOptions,
  startAuthorizationServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';

export interface CliEnv {
  as: TestAuthorizationServer;
  mcp: TestMcpServer;
  home: string;
  /** LATCHKEY_HOME and a fresh LATCHKEY_KEY. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** `as`: the AS's options (token lifetime, device flow, …), as startAuthorizationServer takes them. */
export async function startCliEnv(as: AuthorizationServerOptions): Promise<CliEnv> {
  const server = await startAuthorizationServer(as);
  const mcp = await startMcpServer({ authorizationServer: server });
  const home = await mkdtemp(join(tmpdir(), 'latchkey-cli-'));
  return {
    as: server,
    mcp,
    home,
    env: { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') },
    async close() {
      await mcp.close();
      await server.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}
