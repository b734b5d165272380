import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

import { openStore as openStoreAt } from '../../src/store/open.js';
import { EventType, type CredentialStore } from '../../src/store/contract.js';
import {
  type AuthorizationServerOptions,
  type FaultProxy,
  type McpServerOptions,
  startAuthorizationServer,
  startFaultProxy,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { freshDatabase, testStoreKind } from './postgres.js';
import { loginInto } from './seed-credential.js';

const TSX = fileURLToPath(import.meta.resolve('tsx'));
const CLI = fileURLToPath(new URL('../fixtures/latchkey-cli.ts', import.meta.url));

/**
 * A real AS behind a fault proxy, a real SDK MCP server behind another, a private store, and
 * hosts that spawn `latchkey proxy` as a real process and talk to it with the SDK Client.
 */
export interface ProxyEnv {
  as: TestAuthorizationServer;
  asProxy: FaultProxy;
  mcp: TestMcpServer;
  mcpProxy: FaultProxy;
  /** The MCP server URL hosts use (through mcpProxy). */
  url: string;
  env: Record<string, string>;
  home: string;
  openStore(): Promise<CredentialStore>;
  /**
   * Store a credential as a finished `latchkey login` would: for `resource` (another server on
   * the same AS), or by default for the env's MCP server.
   */
  seedLogin(subject?: string, resource?: string): Promise<void>;
  /**
   * Spawn a proxy and connect an SDK Client host to it: to `server` (another server on the
   * same AS), or by default to the env's MCP server. Closed with the env.
   */
  host(args?: readonly string[], env?: Record<string, string>, server?: string): Promise<Host>;
  close(): Promise<void>;
}

export interface Host {
  client: Client;
  stderr(): string;
  pid: number | null;
  close(): Promise<void>;
}

export async function proxyEnv(
  options: Partial<AuthorizationServerOptions> = {},
  server: Pick<McpServerOptions, 'modernOnly'> = {},
): Promise<ProxyEnv> {
  const asProxy = await startFaultProxy();
  const as = await startAuthorizationServer({ ...options, frontedBy: asProxy });
  const mcpProxy = await startFaultProxy();
  const mcp = await startMcpServer({ ...server, authorizationServer: as, frontedBy: mcpProxy });
  const home = await mkdtemp(join(tmpdir(), 'latchkey-proxy-'));
  // LATCHKEY_TEST_STORE=postgres: the same tests on a fresh Postgres database (postgres.ts).
  const database = testStoreKind() === 'postgres' ? await freshDatabase() : undefined;
  const env: Record<string, string> = {
    LATCHKEY_HOME: home,
    LATCHKEY_KEY: randomBytes(32).toString('base64'),
    ...(database === undefined ? {} : { LATCHKEY_STORE: database.url }),
  };
  const hosts: Host[] = [];
  const stores: CredentialStore[] = [];
  const openStore = async (): Promise<CredentialStore> => {
    const store = await openStoreAt(undefined, { env: { ...process.env, ...env } });
    stores.push(store);
    return store;
  };
  return {
    as,
    asProxy,
    mcp,
    mcpProxy,
    url: mcp.url,
    env,
    home,
    openStore,
    seedLogin: async (subject = 'local', resource = mcp.url) =>
      loginInto(await openStore(), as, resource, { asUser: subject }),
    async host(args = [], extraEnv = {}, server = mcp.url) {
      const host = await spawnHost([server, ...args], { ...env, ...extraEnv });
      hosts.push(host);
      return host;
    },
    async close() {
      await Promise.all(hosts.map((h) => h.close().catch(() => undefined)));
      // Device-login agents are detached on purpose (they outlive their proxy); end them here.
      const events = await (await openStore()).readEvents({ limit: 10_000 }).catch(() => []);
      for (const event of events) {
        if (event.type !== EventType.DEVICE_PROMPT) continue;
        try {
          process.kill(event.pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
      for (const s of stores) await s.close().catch(() => undefined);
      await mcp.close();
      await mcpProxy.close();
      await as.close();
      await asProxy.close();
      await rm(home, { recursive: true, force: true });
      await database?.drop();
    },
  };
}

/**
 * `latchkey proxy <args>` as a real process, with the MCP SDK Client as its host. Without a
 * LATCHKEY_HOME in `env` it gets a fresh one: a test never opens the real user's store, whose
 * key another keyring session may hold.
 */
export async function spawnHost(args: readonly string[], env: Record<string, string>): Promise<Host> {
  const home =
    env['LATCHKEY_HOME'] === undefined ? await mkdtemp(join(tmpdir(), 'latchkey-host-')) : undefined;
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: ['--import', TSX, CLI, 'proxy', ...args],
    env: {
      ...(process.env as Record<string, string>),
      LATCHKEY_LOG_LEVEL: 'debug',
      ...(home === undefined
        ? {}
        : { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') }),
      ...env,
    },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const client = new Client({ name: 'test-host', version: '1.0.0' });
  await client.connect(transport);
  return {
    client,
    stderr: () => stderr,
    get pid() {
      return transport.pid;
    },
    async close() {
      await client.close();
      if (home !== undefined) await rm(home, { recursive: true, force: true });
    },
  };
}

/** The text of a tools/call result. */
export function text(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => c.text ?? '').join('');
}

/** What `callsThroughDrops` saw. */
export interface DropRun {
  calls: number;
  drops: number;
  /** The error of every call that failed. */
  failures: string[];
  /** For each drop, the ms from it to the next call that succeeded. */
  recoveries: number[];
}

/**
 * A host calling `echo` every 100 ms for `ms` while the server loses its sessions: `drop` runs
 * 1 s in and every 1.5 s after. Each call must answer its own text; a call that throws counts
 * as a failure, and the first success after a drop ends that drop's recovery.
 */
export async function callsThroughDrops(host: Host, ms: number, drop: () => Promise<void>): Promise<DropRun> {
  const run: DropRun = { calls: 0, drops: 0, failures: [], recoveries: [] };
  let droppedAt: number | undefined;
  const deadline = Date.now() + ms;
  let nextDrop = Date.now() + 1000;
  while (Date.now() < deadline) {
    if (Date.now() >= nextDrop) {
      await drop();
      droppedAt = Date.now();
      run.drops++;
      nextDrop += 1500;
    }
    try {
      const result = await host.client.callTool({ name: 'echo', arguments: { text: `c${run.calls}` } });
      assert.equal(text(result), `c${run.calls}`);
      if (droppedAt !== undefined) {
        run.recoveries.push(Date.now() - droppedAt);
        droppedAt = undefined;
      }
    } catch (error) {
      run.failures.push(String(error));
    }
    run.calls++;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return run;
}
