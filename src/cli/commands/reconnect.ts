import { canonicalServer } from '../../credential/key.js';
import { EventType, type CredentialStore } from '../../store/contract.js';
import type { CliIO } from '../io.js';
import { withStore } from '../open-store.js';

/**
 * Ask every running proxy (for one server, or all) to drop its session and connect again.
 * The request is an event in the shared store, so it reaches proxies of every process that
 * uses this store within the store's watch interval; an empty server means "all".
 */
export async function reconnect(
  store: CredentialStore,
  io: CliIO,
  server: string | undefined,
): Promise<void> {
  const target = server === undefined ? '' : canonicalServer(server);
  await store.appendEvent({ type: EventType.RECONNECT, server: target, issuer: '', subject: '' });
  io.err(
    target === ''
      ? 'Asked every running latchkey proxy to reconnect.\n'
      : `Asked running latchkey proxies for ${target} to reconnect.\n`,
  );
}

/** `latchkey reconnect [server]`; with no store yet, no proxy can be running against it. */
export async function runReconnect(io: CliIO, server: string | undefined): Promise<void> {
  await withStore(io, async (store, missing) => {
    if (missing === undefined) await reconnect(store, io, server);
    else io.err('No credentials yet, so no latchkey proxy to reconnect; nothing to do.\n');
  });
}
