import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CredentialManager } from '../../src/lifecycle/manager.js';
import type { CredentialManagerOptions } from '../../src/lifecycle/options.js';
import { silentLogger } from '../../src/log.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { openStore } from '../../src/store/open.js';
import {
  type AuthorizationServerOptions,
  type FaultProxy,
  startAuthorizationServer,
  startFaultProxy,
  type TestAuthorizationServer,
} from '../harness/index.js';
import { freshDatabase, type TestStoreKind, testStoreKind } from './postgres.js';
import { loginInto } from './seed-credential.js';

/**
 * One real authorization server behind a fault proxy, a resource it issues tokens for, and
 * a private SQLite store directory. Every test that uses it gets its own of each.
 */
export interface LifecycleEnv {
  as: TestAuthorizationServer;
  proxy: FaultProxy;
  /** The resource (MCP server URI) tokens are issued for. */
  server: string;
  home: string;
  /** Environment for worker processes sharing the store (LATCHKEY_STORE names it). */
  env: Record<string, string>;
  storeKind: TestStoreKind;
  openStore(): Promise<CredentialStore>;
  manager(store: CredentialStore, options?: Partial<CredentialManagerOptions>): CredentialManager;
  /** Log in through the AS's real login and consent pages and store the result. */
  login(store: CredentialStore, subject?: string): Promise<void>;
  close(): Promise<void>;
}

export async function lifecycleEnv(
  options: Partial<AuthorizationServerOptions> & { store?: TestStoreKind } = {},
): Promise<LifecycleEnv> {
  const { store: storeKind = testStoreKind(), ...asOptions } = options;
  const proxy = await startFaultProxy();
  const as = await startAuthorizationServer({ ...asOptions, frontedBy: proxy });
  const server = 'http://127.0.0.1:9/mcp';
  as.addResource(server);
  const home = await mkdtemp(join(tmpdir(), 'latchkey-test-'));
  // A fixed data key keeps these tests independent of the keyring (covered elsewhere).
  const database = storeKind === 'postgres' ? await freshDatabase() : undefined;
  const env: Record<string, string> = {
    LATCHKEY_HOME: home,
    LATCHKEY_KEY: randomBytes(32).toString('base64'),
    LK_SERVER: server,
    LATCHKEY_STORE: database?.url ?? join(home, 'latchkey.db'),
  };
  const stores: CredentialStore[] = [];
  const managers: CredentialManager[] = [];
  return {
    as,
    proxy,
    server,
    home,
    env,
    storeKind,
    async openStore() {
      const store = await openStore(undefined, { env: { ...process.env, ...env } });
      stores.push(store);
      return store;
    },
    manager(store, extra = {}) {
      const manager = new CredentialManager({ store, logger: silentLogger, ...extra });
      managers.push(manager);
      return manager;
    },
    login: (store, subject = 'local') => loginInto(store, as, server, { asUser: subject }),
    async close() {
      for (const m of managers) m.close();
      for (const s of stores) await s.close().catch(() => undefined);
      await as.close();
      await proxy.close();
      await rm(home, { recursive: true, force: true });
      await database?.drop();
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
