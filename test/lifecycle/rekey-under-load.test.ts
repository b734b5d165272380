import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';

import type { CredentialManager } from '../../src/lifecycle/manager.js';
import { sealedBy } from '../../src/store/envelope.js';
import { rekeyStore } from '../../src/store/rekey.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';
import { adminQuery } from '../support/postgres.js';
import { loginSubjects, runRefresher } from '../support/refresher-env.js';
import { loginInto } from '../support/seed-credential.js';
import { startWorker, type Worker } from '../support/worker.js';

const WORKER = fileURLToPath(new URL('../fixtures/manager-worker.ts', import.meta.url));
const REFRESHER = fileURLToPath(new URL('../fixtures/refresher-worker.ts', import.meta.url));
const SUBJECTS = ['local', 'u1', 'u2', 'u3', 'u4', 'u5'];

// Runs on SQLite, and on PostgreSQL with LATCHKEY_TEST_STORE=postgres (scripts/run-suite.sh).
describe('rekey under load', () => {
  let env: LifecycleEnv;
  before(async () => {
    env = await lifecycleEnv({ accessTokenTtl: 3, rotateRefreshToken: true });
  });
  after(() => env.close());

  it('managers in two processes keep refreshing through three rotations: no failed refresh, every row readable', async (t) => {
    const seedStore = await env.openStore();
    for (const subject of SUBJECTS) {
      await loginInto(seedStore, env.as, env.server, { asUser: subject, subject });
    }

    // A refresher in another process (subject 'local'), and two in this one on their own
    // connections, each holding only the data key that was active when it opened.
    const worker = startWorker(WORKER, env.env);
    t.after(() => worker.kill('SIGKILL'));
    await worker.next((m) => m['type'] === 'ready');
    const managers = [env.manager(await env.openStore()), env.manager(await env.openStore())];

    const errors: unknown[] = [];
    let expiredHandedOut = 0;
    let calls = 0;
    let running = true;
    const callers = managers.map((manager) => callLoop(manager));
    async function callLoop(manager: CredentialManager): Promise<void> {
      while (running) {
        for (const subject of SUBJECTS) {
          const at = Date.now();
          try {
            const token = await manager.getToken(env.server, { subject });
            calls++;
            if ((token.expiresAt ?? Infinity) <= at) expiredHandedOut++;
          } catch (error) {
            errors.push(error);
          }
        }
        await sleep(50);
      }
    }
    const workerErrors: unknown[] = [];
    const workerLoop = (async () => {
      while (running) {
        worker.send({ cmd: 'get', callers: 2 });
        const result = await worker.next<{ errors: unknown[] }>((m) => m['type'] === 'result');
        workerErrors.push(...result.errors);
        await sleep(100);
      }
    })();

    const rotator = await env.openStore();
    await sleep(1000);
    const refreshedBefore = env.as.counters.count('refresh_token', 'ok');
    const rotations = [];
    const startedAt = Date.now();
    while (rotations.length < 3 || Date.now() - startedAt < 8000) {
      rotations.push(await rekeyStore(rotator, { batchSize: 1, pauseMs: 30 }));
    }
    const refreshedDuring = env.as.counters.count('refresh_token', 'ok') - refreshedBefore;
    await sleep(500);
    running = false;
    await Promise.all([...callers, workerLoop]);
    worker.send({ cmd: 'exit' });
    await worker.exited;

    assert.deepEqual(errors, [], 'no caller in this process failed');
    assert.deepEqual(workerErrors, [], 'no caller in the worker process failed');
    assert.equal(expiredHandedOut, 0);
    assert.ok(calls > 100, `${calls} calls`);
    assert.ok(
      refreshedDuring >= 6,
      `${refreshedDuring} refreshes while rekeying: 3-s tokens kept coming due`,
    );
    assert.equal(env.as.counters.count('refresh_token', 'invalid_grant'), 0);
    const failures = (await rotator.readEvents({ limit: 10_000 })).filter((e) => e.type === 'refresh-failed');
    assert.deepEqual(failures, [], 'no refresh failed');

    // Every row reads back in a fresh process view, all under the last data key.
    const last = rotations.at(-1)!;
    const fresh = await env.openStore();
    const stored = await fresh.listCredentials();
    assert.equal(stored.length, SUBJECTS.length);
    for (const credential of stored) {
      assert.ok(credential.secrets.accessToken.length > 0);
      assert.equal(
        credential.status.state,
        'valid',
        `${credential.key.subject}: ${JSON.stringify(credential.status)}`,
      );
    }
    const raw = await rawTables(env);
    assert.deepEqual(new Set(raw.credentials.map((row) => sealedBy(row.secrets))), new Set([last.dataKey]));
    assert.deepEqual(raw.dataKeys, [last.dataKey]);
  });

  it('the fleet refresher, in another process and in this one, refreshes through rotations and keeps every row due', async (t) => {
    const store = await env.openStore();
    const users = await loginSubjects(env, store, 8, 'fleet');
    const worker = startWorker(REFRESHER, { ...env.env, LK_REFRESHER: '{}' });
    t.after(() => worker.kill('SIGKILL'));
    await worker.next((m) => m['type'] === 'ready');
    const local = runRefresher(await env.openStore());
    t.after(() => local.close());

    const rotator = await env.openStore();
    const rotations = [];
    const startedAt = Date.now();
    while (rotations.length < 3 || Date.now() - startedAt < 8000) {
      rotations.push(await rekeyStore(rotator, { batchSize: 1, pauseMs: 30 }));
    }
    await local.close();
    worker.send({ cmd: 'exit' });
    const closed = await worker.next<{ stats: Record<string, number> }>((m) => m['type'] === 'closed');
    await worker.exited;

    const workerEvents = (await drain(worker)).map((m) => m['event'] as { type: string });
    const events = [...workerEvents, ...local.events];
    const bad = events.filter((e) => e.type === 'needs-login' || e.type === 'error' || e.type === 'retrying');
    assert.deepEqual(bad, [], 'no refresh failed, in either process');
    const refreshed = events.filter((e) => e.type === 'refreshed').length;
    assert.ok(
      refreshed >= users.length,
      `${refreshed} refreshes while rekeying (${JSON.stringify(closed.stats)})`,
    );
    assert.equal(env.as.counters.count('refresh_token', 'invalid_grant'), 0);

    const last = rotations.at(-1)!;
    const rows = (await rawTables(env)).credentials.filter((row) => row.subject.startsWith('fleet-'));
    assert.equal(rows.length, users.length);
    for (const row of rows) {
      assert.notEqual(row.due_at, null, `${row.subject} is still in the due index`);
      assert.equal(sealedBy(row.secrets), last.dataKey);
    }
    const fresh = await env.openStore();
    for (const user of users) {
      const stored = await fresh.getCredential(user.key);
      assert.equal(stored?.status.state, 'valid', user.key.subject);
    }
  });
});

interface RawTables {
  credentials: { subject: string; due_at: number | null; secrets: Buffer }[];
  dataKeys: string[];
}

/** The store's tables as another program sees them, on either store (LATCHKEY_TEST_STORE). */
async function rawTables(env: LifecycleEnv): Promise<RawTables> {
  const credentials = 'SELECT subject, due_at, secrets FROM credentials';
  const dataKeys = 'SELECT DISTINCT id FROM data_keys';
  if (env.storeKind === 'postgres') {
    const url = env.env['LATCHKEY_STORE']!;
    return {
      credentials: (await adminQuery(url, credentials)).rows.map((row: RawTables['credentials'][number]) => ({
        ...row,
        due_at: row.due_at === null ? null : Number(row.due_at),
      })),
      dataKeys: (await adminQuery(url, dataKeys)).rows.map((row: { id: string }) => row.id),
    };
  }
  const db = new Database(join(env.home, 'latchkey.db'), { readonly: true });
  try {
    return {
      credentials: db.prepare(credentials).all() as RawTables['credentials'],
      dataKeys: db.prepare(dataKeys).pluck().all() as string[],
    };
  } finally {
    db.close();
  }
}

/** Every message a worker sent that no `next` took yet, after it exited. */
async function drain(worker: Worker): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (;;) {
    const message = await worker.next((m) => m['type'] === 'event', 1).catch(() => undefined);
    if (message === undefined) return out;
    out.push(message);
  }
}
