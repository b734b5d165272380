import assert from 'node:assert/strict';

import { keyId } from '../../src/credential/key.js';
import type { StoredCredential } from '../../src/credential/model.js';
import type { RefresherEvent } from '../../src/lifecycle/refresher/events.js';
import type { RefresherOptions } from '../../src/lifecycle/refresher/options.js';
import { type Refresher, startRefresher } from '../../src/lifecycle/refresher/refresher.js';
import { silentLogger } from '../../src/log.js';
import type { CredentialStore } from '../../src/store/contract.js';
import type { LifecycleEnv } from './lifecycle-env.js';
import { loginInto } from './seed-credential.js';

/** A refresher event with the moment this process saw it. */
export type SeenEvent = RefresherEvent & { seenAt: number };

export interface RunningRefresher {
  refresher: Refresher;
  events: SeenEvent[];
  close(): Promise<void>;
}

/** An in-process refresher whose events are recorded as they arrive. */
export function runRefresher(
  store: CredentialStore,
  options: Omit<RefresherOptions, 'store'> = {},
): RunningRefresher {
  const refresher = startRefresher({ store, logger: silentLogger, ...options });
  const events: SeenEvent[] = [];
  refresher.on('event', (event) => events.push({ ...event, seenAt: Date.now() }));
  return { refresher, events, close: () => refresher.close() };
}

/**
 * Log `count` users in at `env`'s AS (its real login and consent pages), each stored under
 * its own latchkey subject, as a multi-user application would; returns their credentials.
 */
export async function loginSubjects(
  env: LifecycleEnv,
  store: CredentialStore,
  count: number,
  prefix = 'user',
): Promise<StoredCredential[]> {
  for (let i = 0; i < count; i++) {
    const subject = `${prefix}-${i}`;
    await loginInto(store, env.as, env.server, { asUser: subject, subject });
  }
  const all = await store.listCredentials({ issuer: env.as.issuer });
  const mine = all.filter((c) => c.key.subject.startsWith(`${prefix}-`));
  assert.equal(mine.length, count, 'one credential per user');
  return mine;
}

/** Polls until `condition` holds; fails the test with `what` after `timeoutMs`. */
export async function until(
  what: string,
  condition: () => Promise<boolean> | boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Generations by credential, to compare before and after. */
export async function generations(store: CredentialStore): Promise<Map<string, number>> {
  return new Map((await store.listCredentials()).map((c) => [keyId(c.key), c.generation]));
}

/** POST /token arrivals at a proxy, as epoch ms, in order. */
export function tokenRequestTimes(seen: { method: string; path: string; at: number }[]): number[] {
  return seen
    .filter((r) => r.method === 'POST' && r.path.split('?')[0] === '/token')
    .map((r) => r.at)
    .sort((a, b) => a - b);
}

/**
 * The most requests seen in any window of `windowMs`, against what a token bucket of
 * `burst` refilling at `ratePerSecond` allows in that window.
 */
export function worstWindow(times: number[], windowMs: number): { count: number; start: number } {
  let best = { count: 0, start: 0 };
  let j = 0;
  for (let i = 0; i < times.length; i++) {
    while ((times[i] ?? 0) - (times[j] ?? 0) > windowMs) j++;
    if (i - j + 1 > best.count) best = { count: i - j + 1, start: times[j] ?? 0 };
  }
  return best;
}
