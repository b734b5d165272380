import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { keyId } from '../../src/credential/key.js';
import type { RefresherEvent } from '../../src/lifecycle/refresher/events.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';
import { generations, loginSubjects, until } from '../support/refresher-env.js';
import { startWorker, type Worker } from '../support/worker.js';

const WORKER = fileURLToPath(new URL('../fixtures/refresher-worker.ts', import.meta.url));
const MANAGER = fileURLToPath(new URL('../fixtures/manager-worker.ts', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/latchkey.cjs', import.meta.url));

interface EventMessage {
  type: 'event';
  at: number;
  event: RefresherEvent;
}

/**
 * Refreshers as separate OS processes sharing one SQLite store, against a real AS behind a
 * fault proxy: what the AS sees is the ground truth.
 */
describe('fleet refresher, several processes', () => {
  let env: LifecycleEnv;
  const workers: Worker[] = [];
  const events = new Map<Worker, EventMessage[]>();
  function spawnRefresher(options: Record<string, unknown>): Worker {
    const worker = startWorker(WORKER, { ...env.env, LK_REFRESHER: JSON.stringify(options) });
    workers.push(worker);
    const seen: EventMessage[] = [];
    events.set(worker, seen);
    void (async () => {
      for (;;) {
        const msg = await worker
          .next<EventMessage>((m) => m.type === 'event', 600_000)
          .catch(() => undefined);
        if (msg === undefined) return;
        seen.push(msg);
      }
    })();
    return worker;
  }
  afterEach(async () => {
    for (const w of workers.splice(0)) w.kill('SIGKILL');
    events.clear();
    await env.close();
  });

  it('two refresher processes and a busy manager on one store: exactly one refresh per generation reaches the AS', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 3, rotateRefreshToken: true });
    const store = await env.openStore();
    const creds = await loginSubjects(env, store, 8);
    await env.login(store); // the desktop user's credential, also used by a manager process
    const before = await generations(store);
    env.as.counters.reset();
    const options = { leaseTtlMs: 3000, requestTimeoutMs: 2000, watchPollMs: 50 };
    const pair = [spawnRefresher(options), spawnRefresher(options)];
    await Promise.all(pair.map((w) => w.next((m) => m.type === 'ready')));
    // A manager with its own proactive and on-demand refreshes on the 'local' credential
    // competes with both refreshers for it: the shared lease keeps them to one refresh.
    const manager = startWorker(MANAGER, env.env);
    workers.push(manager);
    await manager.next((m) => m.type === 'ready');
    const managerErrors: unknown[] = [];
    let asking = true;
    const asker = (async () => {
      while (asking) {
        manager.send({ cmd: 'get', callers: 2 });
        const result = await manager.next<{ errors: unknown[] }>((m) => m.type === 'result');
        managerErrors.push(...result.errors);
        await sleep(150);
      }
    })();
    await until(
      'three refreshes of every credential',
      async () => {
        const now = await generations(store);
        return creds.every((c) => (now.get(keyId(c.key)) ?? 0) >= (before.get(keyId(c.key)) ?? 0) + 3);
      },
      30_000,
    );
    asking = false;
    await asker;
    assert.deepEqual(managerErrors, [], 'the manager always had a valid token');
    for (const w of [...pair, manager]) w.send({ cmd: 'exit' });
    await Promise.all([...pair, manager].map((w) => w.exited));
    const after = await generations(store);
    let produced = 0;
    for (const [id, generation] of after) produced += generation - (before.get(id) ?? 0);
    const refreshed = pair.flatMap((w) => events.get(w) ?? []).filter((m) => m.event.type === 'refreshed');
    const perWorker = pair.map(
      (w) => (events.get(w) ?? []).filter((m) => m.event.type === 'refreshed').length,
    );
    console.log(`# fleet: ${produced} generations, refreshed per process ${perWorker.join(' + ')}`);
    assert.equal(env.as.counters.count('refresh_token', 'ok'), produced, 'one AS refresh per new generation');
    assert.equal(env.as.counters.count('refresh_token'), produced, 'and no other refresh attempt');
    const local =
      (after.get(keyId({ server: env.server, issuer: env.as.issuer, subject: 'local' })) ?? 0) - 1;
    console.log(`# fleet: the shared 'local' credential went through ${local} refreshes`);
    assert.ok(refreshed.length <= produced, 'the refreshers produced at most the new generations');
    const pairs = refreshed.map((m) =>
      m.event.type === 'refreshed' ? `${keyId(m.event)}#${m.event.generation}` : '',
    );
    assert.equal(new Set(pairs).size, pairs.length, 'no generation produced twice');
    assert.deepEqual(await store.listLeases(), [], 'both handed their claims back on exit');
  });

  it('kill -9 of a refresher: its claims are taken over once their leases expire', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 2, rotateRefreshToken: true });
    const store = await env.openStore();
    const creds = await loginSubjects(env, store, 4);
    await sleep(2100); // all four are overdue: the first refresher claims them in one batch
    env.as.counters.reset();
    const held = env.proxy.inject({ method: 'POST', path: '/token', exact: true, action: { type: 'hold' } });
    const leaseTtlMs = 2000;
    const doomed = spawnRefresher({ leaseTtlMs, requestTimeoutMs: 10_000 });
    const { owner } = await doomed.next<{ owner: string }>((m) => m.type === 'ready');
    await until('all four refreshes parked at the proxy', () => held.hits === 4, 10_000);
    const leases = await store.listLeases();
    assert.equal(leases.length, 4);
    assert.ok(leases.every((l) => l.owner === owner));
    doomed.kill('SIGKILL');
    await doomed.exited;
    env.proxy.clear(held); // their client died: the parked requests never reach the AS
    assert.equal(env.as.counters.count('refresh_token'), 0);

    const survivor = spawnRefresher({ leaseTtlMs, requestTimeoutMs: 2000 });
    await survivor.next((m) => m.type === 'ready');
    await until(
      'the survivor refreshed all four',
      async () => {
        const now = await Promise.all(creds.map((c) => store.getCredential(c.key)));
        return now.every((c, i) => (c?.generation ?? 0) > creds[i]!.generation);
      },
      15_000,
    );
    // Its events come over a pipe and may trail the store by a moment: wait for them too.
    const refreshedBySurvivor = (): number =>
      (events.get(survivor) ?? []).filter((m) => m.event.type === 'refreshed').length;
    await until('the survivor reported its four refreshes', () => refreshedBySurvivor() >= 4, 5_000);
    const taken = (events.get(survivor) ?? []).filter((m) => m.event.type === 'refreshed');
    assert.equal(taken.length, 4);
    for (const m of taken) {
      const lease = leases.find((l) => m.event.type === 'refreshed' && keyId(l.key) === keyId(m.event));
      assert.ok(lease !== undefined && m.at >= lease.expiresAt, 'not taken while the dead claim was live');
    }
    const latest = Math.max(...taken.map((m) => m.at)) - Math.max(...leases.map((l) => l.expiresAt));
    console.log(`# crash: claims taken over ${latest} ms after the last lease expired`);
    assert.equal(env.as.counters.count('refresh_token', 'ok'), 4);
    assert.equal(env.as.counters.count('refresh_token', 'invalid_grant'), 0);
    assert.equal(env.as.counters.count('authorization_code'), 0, 'no login needed');
  });

  it('kill -9 with its refresh at the AS: the instance that takes the claim over names the lost holder', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 2, rotateRefreshToken: true });
    const store = await env.openStore();
    const [cred] = await loginSubjects(env, store, 1);
    assert.ok(cred !== undefined);
    await sleep(2100); // due: the first refresher claims it at once
    env.as.counters.reset();
    const swallowed = env.proxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      times: 1,
      action: { type: 'swallow-response' },
    });
    const leaseTtlMs = 2000;
    const doomed = spawnRefresher({ leaseTtlMs, requestTimeoutMs: 30_000 });
    const { owner } = await doomed.next<{ owner: string }>((m) => m.type === 'ready');
    await swallowed.processed;
    doomed.kill('SIGKILL');
    await doomed.exited;
    env.proxy.clear(swallowed);
    // The in-flight loss of a kill -9: the AS rotated the refresh token, the store never knew.
    assert.equal(env.as.counters.count('refresh_token', 'ok'), 1);
    assert.equal((await store.getCredential(cred.key))?.generation, cred.generation);
    const eventsBefore = await store.lastEventId();

    const survivor = spawnRefresher({ leaseTtlMs, requestTimeoutMs: 2000 });
    await survivor.next((m) => m.type === 'ready');
    const report = (): RefresherEvent | undefined =>
      (events.get(survivor) ?? []).find((m) => m.event.type === 'needs-login')?.event;
    await until('the survivor reported needs-login', () => report() !== undefined, 15_000);
    const event = report();
    assert.ok(event?.type === 'needs-login');
    assert.equal(event.subject, cred.key.subject);
    assert.equal(event.error, 'invalid_grant');
    assert.equal(event.takenOverFrom, owner, 'the event names the instance whose refresh was lost');
    assert.match(event.reason, /taken over from .* stopped mid-refresh/);
    // The same fact reaches every other process and NOTIFY listener through the store.
    const stored = await store.getCredential(cred.key);
    assert.equal(stored?.status.state, 'needs-login', 'kept, not deleted');
    assert.ok(stored?.status.lastError?.message.includes(owner));
    const notices = (await store.readEvents({ afterId: eventsBefore })).filter(
      (e) => e.type === 'needs-login',
    );
    assert.equal(notices.length, 1);
    assert.equal(notices[0]?.detail?.['takenOverFrom'], owner);
    assert.equal(
      env.as.counters.count('refresh_token', 'invalid_grant'),
      1,
      'one attempt with the spent token',
    );
  });

  it('`latchkey refresher` in text: a rejected grant is one line with the server, the subject and the reason', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 2, rotateRefreshToken: true });
    const store = await env.openStore();
    const [cred] = await loginSubjects(env, store, 1);
    assert.ok(cred !== undefined);
    env.proxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      action: {
        type: 'status',
        status: 400,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ error: 'invalid_grant', error_description: 'grant revoked' }),
      },
    });
    const child = spawn(process.execPath, [BIN, 'refresher', '--lease-ttl', '5'], {
      env: { ...process.env, ...env.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await until('a needs-login line', () => lines.some((l) => l.includes('needs-login')), 15_000);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    const line = lines.find((l) => l.includes('needs-login')) ?? '';
    assert.ok(line.includes(`  ${env.server}  subject=${cred.key.subject}  `), line);
    assert.ok(line.endsWith('  invalid_grant: grant revoked'), line);
    assert.equal((await store.getCredential(cred.key))?.status.state, 'needs-login');
  });

  it('`latchkey refresher --json` refreshes, prints events, and hands its claims back on SIGTERM', async () => {
    env = await lifecycleEnv({ accessTokenTtl: 2, rotateRefreshToken: true });
    const store = await env.openStore();
    await loginSubjects(env, store, 2);
    const child = spawn(process.execPath, [BIN, 'refresher', '--json', '--lease-ttl', '5'], {
      env: { ...process.env, ...env.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const lines: Record<string, unknown>[] = [];
    createInterface({ input: child.stdout }).on('line', (line) =>
      lines.push(JSON.parse(line) as Record<string, unknown>),
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await until(
      'two refreshed events',
      () => lines.filter((l) => l['type'] === 'refreshed').length >= 2,
      15_000,
    );
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /running as /);
    const first = lines.find((l) => l['type'] === 'refreshed');
    assert.equal(first?.['server'], env.server);
    assert.ok(!JSON.stringify(lines).includes('"accessToken"'), 'events carry no tokens');
    assert.deepEqual(await store.listLeases(), []);
  });
});
