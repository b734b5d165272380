import type { CredentialKey } from '../credential/key.js';
import { EventType, type EventLog, type Lease, type LeaseTable } from '../store/contract.js';
import { recentEvents } from '../store/recent-events.js';
import type { EngineContext } from './context.js';

/** The login lease needs the leases, and the event log to count recent logins. */
export type LoginLeaseStore = LeaseTable & EventLog;

/**
 * The login lease: "someone is logging in to this server as this subject". It makes
 * interactive login single-flight across processes (design rule 6), and it is also how a
 * newer login replaces one nobody is finishing (a tab behind other windows, a device code
 * nobody typed): the newer process takes the lease over, and the old holder, which checks
 * that it still holds the lease several times a second, abandons its flow and adopts the
 * credential the newer login writes.
 */
export function loginLeaseKey(server: string, subject: string): CredentialKey {
  return { server, issuer: '\u0000login', subject };
}

/**
 * A process that wants a login this soon after it started measures "when it began wanting"
 * from its own start: module loading on a busy machine can take seconds, and a host's
 * duplicate spawns must still count as simultaneous.
 */
const YOUNG_PROCESS_MS = 5_000;
/** How often a login holder checks that it still holds the lease. */
const OWNERSHIP_CHECK_MS = 200;
/** How far back started logins are counted for the cross-process storm cap. */
const STORM_WINDOW_MS = 60_000;
/** Events scanned for started logins; a minute with more than this is a storm anyway. */
const STORM_SCAN = 500;

export interface LoginClaim {
  /** True when this claim took the lease over from another process's pending login. */
  replaced: boolean;
}

/**
 * Whether a pending login held by another process should be replaced by ours.
 * - A login the person started (`explicit`) always replaces: it is the one being looked at.
 * - An automatic login replaces one that began more than `supersedeAfterMs` before this
 *   process wanted a login (see YOUNG_PROCESS_MS), so duplicates a host spawns together join
 *   the one flow instead of opening a tab each, while a proxy the host restarts replaces the
 *   tab its predecessor left behind.
 * - The storm cap: automatic replacement stops once `maxLoginsPerMinute` automatic logins
 *   started for the server in the last minute, across processes. Then it waits like before.
 */
export async function shouldReplace(
  ctx: EngineContext<LoginLeaseStore>,
  lease: Lease,
  request: { server: string; explicit: boolean; wantedAt: number },
): Promise<boolean> {
  if (request.explicit) return true;
  if (lease.acquiredAt + ctx.login.supersedeAfterMs >= wantedSince(request.wantedAt)) return false;
  return (await loginsStartedRecently(ctx.store, request.server)) < ctx.login.maxLoginsPerMinute;
}

/**
 * Take the lease from `lease.owner`. Breaking and taking are two steps, so the old holder's
 * renewal can slip in between; a few rounds settle it.
 */
export async function takeOver(
  ctx: EngineContext<LoginLeaseStore>,
  key: CredentialKey,
  lease: Lease,
): Promise<boolean> {
  let stale = lease.owner;
  for (let round = 0; round < 5; round++) {
    await ctx.store.breakLease(key, stale);
    if ((await ctx.store.acquireLease(key, ctx.holder, ctx.leaseTtlMs)) !== undefined) return true;
    const now = await ctx.store.getLease(key);
    if (now === undefined) continue;
    stale = now.owner;
  }
  return false;
}

/**
 * Keep holding the lease while a flow runs: renew it, and call `onLost` as soon as another
 * process has taken it over (or it lapsed into someone else's hands). Returns a stop function.
 */
export function holdLease(
  ctx: EngineContext<LoginLeaseStore>,
  key: CredentialKey,
  onLost: () => void,
): () => void {
  let lost = false;
  const check = async (renew: boolean): Promise<void> => {
    if (lost) return;
    // Never re-create a lease someone broke: that is how a replaced login would come back.
    const ours = await holdsLease(ctx, key);
    if (ours && renew) await ctx.store.acquireLease(key, ctx.holder, ctx.leaseTtlMs).catch(() => undefined);
    if (!ours) {
      lost = true;
      onLost();
    }
  };
  const owner = setInterval(() => void check(false), OWNERSHIP_CHECK_MS);
  const renew = setInterval(() => void check(true), Math.max(50, ctx.leaseTtlMs / 3));
  owner.unref();
  renew.unref();
  return () => {
    clearInterval(owner);
    clearInterval(renew);
  };
}

function wantedSince(wantedAt: number): number {
  return wantedAt - performance.timeOrigin < YOUNG_PROCESS_MS ? performance.timeOrigin : wantedAt;
}

/** Whether this process holds the lease on `key` right now. */
export async function holdsLease(ctx: EngineContext<LoginLeaseStore>, key: CredentialKey): Promise<boolean> {
  const lease = await ctx.store.getLease(key).catch(() => undefined);
  return lease?.owner === ctx.holder.owner;
}

/** Automatic logins (each opened a tab or a device prompt) started for `server` within the storm window. */
async function loginsStartedRecently(store: EventLog, server: string): Promise<number> {
  const since = Date.now() - STORM_WINDOW_MS;
  const events = await recentEvents(store, STORM_SCAN, server);
  return events.filter(
    (e) => e.type === EventType.LOGIN_STARTED && e.detail?.['explicit'] === false && e.at >= since,
  ).length;
}
