// Issue 16's fleet: `latchkey refresher` instances as separate OS processes (the built
// command, as an operator runs it) on one PostgreSQL database, many users logged in at the
// real oidc-provider AS, and a sweep that watches every credential's expiry from outside.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { keyId } from '../../src/credential/key.js';
import type { StoredCredential } from '../../src/credential/model.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import type { RefresherEvent } from '../../src/lifecycle/refresher/events.js';
import { silentLogger } from '../../src/log.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { obtainTokens } from '../harness/index.js';
import type { LifecycleEnv } from '../support/lifecycle-env.js';

const BIN = fileURLToPath(new URL('../../bin/latchkey.cjs', import.meta.url));

/** One `latchkey refresher --json` process and the events it printed. */
export interface RefresherProcess {
  readonly child: ChildProcess;
  readonly events: RefresherEvent[];
  readonly stderr: string[];
  /** Resolves with the exit code (null after a signal). */
  readonly exited: Promise<number | null>;
  /** SIGTERM and wait: the command finishes its refreshes and hands back its claims. */
  stop(): Promise<number | null>;
}

export function spawnRefresher(env: LifecycleEnv, flags: string[]): RefresherProcess {
  const child = spawn(process.execPath, [BIN, 'refresher', '--json', ...flags], {
    env: { ...process.env, ...env.env, LATCHKEY_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: RefresherEvent[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    events.push(JSON.parse(line) as RefresherEvent);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    events,
    stderr,
    exited,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * Log `count` users in through the AS's real login and consent pages, `parallel` at a time,
 * each under its own subject, as a gateway's users would connect. Returns their subjects.
 */
export async function loginMany(
  env: LifecycleEnv,
  store: CredentialStore,
  count: number,
  parallel = 8,
): Promise<string[]> {
  const manager = new CredentialManager({
    store,
    logger: silentLogger,
    watch: false,
    proactiveRefresh: false,
  });
  const subjects = Array.from({ length: count }, (_, i) => `user-${i}`);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) {
      const subject = subjects[i] ?? '';
      const tokens = await obtainTokens(env.as, { resource: env.server, subject });
      await manager.saveAcquired(env.server, {
        issuer: tokens.issuer,
        clientId: tokens.clientId,
        requestedAt: tokens.requestedAt,
        response: tokens.response,
        subject,
      });
    }
  };
  try {
    await Promise.all(Array.from({ length: parallel }, worker));
  } finally {
    manager.close();
  }
  return subjects;
}

/**
 * Reads every credential from the store once a second, from outside the refreshers, and
 * remembers each one seen past its expiry: the "refreshed before it expires" check does not
 * rely on what the refreshers say about themselves.
 */
export class ExpirySweep {
  readonly expired = new Set<string>();
  sweeps = 0;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: CredentialStore,
    private readonly issuer: string,
  ) {}

  start(everyMs = 1000): void {
    this.#timer = setInterval(() => {
      this.#running = this.#running.then(() => this.#sweep()).catch(() => undefined);
    }, everyMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  async #sweep(): Promise<void> {
    const now = Date.now();
    for (const cred of await this.store.listCredentials({ issuer: this.issuer })) {
      if (cred.status.state === 'needs-login') continue;
      if (cred.expiresAt !== undefined && cred.expiresAt <= now) this.expired.add(keyId(cred.key));
    }
    this.sweeps++;
  }
}

/**
 * Users' calls as a gateway makes them: a manager that leaves refreshing ahead to the
 * refreshers (`proactiveRefresh: 'refresher'`) asks for random users' tokens, and records
 * any token handed out already expired and any call that had to wait for a refresh of its
 * own (the refreshers should have been first).
 */
export class UserCalls {
  calls = 0;
  servedExpired = 0;
  failures: string[] = [];
  #stopped = false;
  #done: Promise<void> = Promise.resolve();
  readonly manager: CredentialManager;

  constructor(
    store: CredentialStore,
    private readonly server: string,
    private readonly subjects: () => readonly string[],
  ) {
    this.manager = new CredentialManager({ store, logger: silentLogger, proactiveRefresh: 'refresher' });
  }

  start(pauseMs = 5): void {
    this.#done = this.#loop(pauseMs);
  }

  /** Calls that waited for a refresh because no refresher had been first. */
  get waited(): number {
    return this.manager.stats.callersWaitedOnRefresh;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#done;
    this.manager.close();
  }

  async #loop(pauseMs: number): Promise<void> {
    while (!this.#stopped) {
      const all = this.subjects();
      const subject = all[Math.floor(Math.random() * all.length)];
      if (subject !== undefined) await this.#call(subject);
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }

  async #call(subject: string): Promise<void> {
    try {
      const token = await this.manager.getToken(this.server, { subject, interactive: false });
      this.calls++;
      if (token.expiresAt !== undefined && token.expiresAt <= Date.now()) this.servedExpired++;
    } catch (error) {
      this.failures.push(`${subject}: ${(error as Error).message}`);
    }
  }
}

/** Sum of (generation − 1): the refreshes the store kept, one per generation after the first. */
export function storedRefreshes(creds: readonly StoredCredential[]): number {
  return creds.reduce((sum, c) => sum + c.generation - 1, 0);
}

export function assertAllExited(codes: (number | null)[], procs: readonly RefresherProcess[]): void {
  codes.forEach((code, i) =>
    assert.equal(code, 0, `refresher ${i} exit code; stderr:\n${procs[i]?.stderr.join('\n') ?? ''}`),
  );
}

export function count(events: readonly RefresherEvent[], type: RefresherEvent['type']): number {
  return events.filter((e) => e.type === type).length;
}
