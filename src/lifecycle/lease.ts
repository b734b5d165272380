import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

import type { CredentialKey } from '../credential/key.js';
import type { LeaseHolder, LeaseTable } from '../store/contract.js';

export function newLeaseHolder(): LeaseHolder {
  const host = hostname();
  return { owner: `${host}:${process.pid}:${randomUUID().slice(0, 8)}`, pid: process.pid, host };
}

/** Whether a process with this pid exists on this host (EPERM means it exists but is not ours). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A lease held by a process on this host that no longer exists can be broken at once
 * instead of waiting for it to expire: a crashed refresher must not stall everyone for the
 * whole lease TTL. Leases from other hosts (shared Postgres) only expire. Returns the owner
 * whose lease was broken, if one was.
 */
export async function breakLeaseIfHolderDead(
  store: LeaseTable,
  key: CredentialKey,
): Promise<string | undefined> {
  const lease = await store.getLease(key);
  if (lease === undefined) return undefined;
  if (lease.host !== hostname() || lease.pid === process.pid || processAlive(lease.pid)) return undefined;
  return (await store.breakLease(key, lease.owner)) ? lease.owner : undefined;
}

/** Why the refresh token of a credential whose lease was taken over was probably spent. */
export function probableLoss(previousHolder: string): string {
  return (
    `the lease was taken over from ${previousHolder}, which stopped mid-refresh: ` +
    'its refresh most likely reached the AS and its answer was lost with it'
  );
}

/**
 * Keep extending a lease while its work runs; returns the function that stops. A lease is
 * short so that a killed holder's claim is taken over soon, but a token request to a slow AS
 * may outlast it: if it lapsed mid-request, another process would send the same refresh
 * token, and an AS with reuse detection revokes the whole grant. Extensions every third of
 * the TTL keep a live holder's lease alive whatever the request takes; a dead holder stops
 * extending, so the takeover time stays the TTL. A failed extension is left to the write,
 * whose lease condition then refuses it.
 */
export function keepLease(
  store: LeaseTable,
  key: CredentialKey,
  holder: LeaseHolder,
  ttlMs: number,
): () => Promise<void> {
  let pending: Promise<unknown> = Promise.resolve();
  const timer = setInterval(
    () => {
      pending = store.acquireLease(key, holder, ttlMs).catch(() => undefined);
    },
    Math.max(50, Math.floor(ttlMs / 3)),
  );
  timer.unref();
  // Stopping waits for an extension in flight, so that none lands after the release.
  return async () => {
    clearInterval(timer);
    await pending;
  };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason as Error);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Poll interval with a little jitter so waiting processes don't read in lockstep. */
export function pollDelay(baseMs: number): number {
  return Math.round(baseMs * (0.75 + Math.random() * 0.5));
}
