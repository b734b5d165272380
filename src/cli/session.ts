/**
 * The store and manager one command runs with, opened for the command and closed after it.
 * Loaded by the commands' work modules only, never at start-up: it brings the lifecycle
 * engine.
 */
import { CredentialManager } from '../lifecycle/manager.js';
import type { CredentialManagerOptions } from '../lifecycle/options.js';
import { createLogger } from '../log.js';
import type { CredentialStore } from '../store/contract.js';
import type { CliIO } from './io.js';
import { type StoreAccess, withStore } from './open-store.js';

/** How long a CLI command may spend retrying pending revocations (docs/operations.md). */
const CLI_REVOCATION_BUDGET_MS = 3000;

/**
 * A short-lived manager for one command: no store watch and no proactive timers, which only
 * pay off in long-running processes.
 */
export async function withManager(
  io: CliIO,
  extra: (store: CredentialStore) => Partial<CredentialManagerOptions>,
  run: (manager: CredentialManager, store: CredentialStore) => Promise<void>,
  access: StoreAccess = 'read',
): Promise<void> {
  await withStore(
    io,
    async (store) => {
      const manager = cliManager(store, extra(store));
      try {
        await run(manager, store);
      } finally {
        // A refresh started by something that outlived the command (an SDK transport's GET
        // stream) must land in the store before the process exits.
        await manager.settle();
        manager.close();
      }
    },
    access,
  );
}

/** A manager's start-up pass over the pending revocations, within the CLI's budget. */
export async function retryPendingRevocations(store: CredentialStore): Promise<void> {
  const manager = cliManager(store);
  await manager.settle();
  manager.close();
}

/** A manager for one command: no watch, no proactive refresh, a short revocation pass. */
function cliManager(
  store: CredentialStore,
  extra: Partial<CredentialManagerOptions> = {},
): CredentialManager {
  return new CredentialManager({
    store,
    watch: false,
    proactiveRefresh: false,
    // Retrying pending revocations must not hold up a command for long.
    revocationRetry: { passBudgetMs: CLI_REVOCATION_BUDGET_MS },
    logger: createLogger(),
    ...extra,
  });
}
