/**
 * A running proxy says so in the store, so `latchkey status` can list who is connected to
 * each server. Presence is a lease under a reserved issuer, one per process: it expires on
 * its own when the process dies (no cleanup needed after kill -9), and listing live leases
 * is something every store already does well.
 */
import type { CredentialStore, Lease, LeaseHolder } from '../store/contract.js';

/** The issuer of presence leases; no real issuer starts with a NUL. */
export const CONNECTION_ISSUER = '\u0000connection';
const TTL_MS = 30_000;

/** Announce `holder` as connected to `server` until the returned stop function runs. */
export function announcePresence(
  store: CredentialStore,
  server: string,
  holder: LeaseHolder,
): () => Promise<void> {
  const key = { server, issuer: CONNECTION_ISSUER, subject: holder.owner };
  const renew = (): void => {
    void store.acquireLease(key, holder, TTL_MS).catch(() => undefined);
  };
  renew();
  const timer = setInterval(renew, TTL_MS / 3);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await store.releaseLease(key, holder.owner).catch(() => undefined);
  };
}

/** Live connections, per server. */
export async function connectedProcesses(store: CredentialStore, server?: string): Promise<Lease[]> {
  return store.listLeases({ issuer: CONNECTION_ISSUER, ...(server === undefined ? {} : { server }) });
}
