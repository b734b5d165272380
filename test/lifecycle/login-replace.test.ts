import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { AcquireHook } from '../../src/lifecycle/acquire.js';
import { EventType } from '../../src/store/contract.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';
import { loginHook } from '../support/login-hook.js';

/** A login nobody finishes: it waits until its signal ends it, and says whether that happened. */
function stalledHook(): AcquireHook & { started: number; aborted: number } {
  const hook = Object.assign(
    (request: Parameters<AcquireHook>[0]) => {
      hook.started++;
      return new Promise<never>((_, reject) => {
        request.signal.addEventListener('abort', () => {
          hook.aborted++;
          reject(new Error('stalled login aborted'));
        });
      });
    },
    { started: 0, aborted: 0 },
  );
  return hook;
}

/**
 * Which pending login a newer one replaces, with the real AS and a real SQLite store shared
 * by managers that each hold their own leases, as separate processes would. (The proxy tests
 * in test/proxy/supersede.test.ts do the same with spawned processes and browsers.)
 */
describe('a newer login replaces a pending one nobody is finishing', () => {
  let env: LifecycleEnv;
  let server: string;
  before(async () => {
    env = await lifecycleEnv({ accessTokenTtl: 300 });
    server = env.server;
    // A process measures "when it wanted a login" from its own start during its first 5 s
    // (so a host's duplicate spawns join one flow); these managers play long-running ones.
    await sleep(Math.max(0, 5_500 - performance.now()));
  });
  after(async () => env.close());

  async function logins(after: number): Promise<{ explicit: unknown; replaced: unknown }[]> {
    const store = await env.openStore();
    return (await store.readEvents({ server }))
      .filter((e) => e.type === EventType.LOGIN_STARTED && e.at >= after)
      .map((e) => ({ explicit: e.detail?.['explicit'], replaced: e.detail?.['replaced'] }));
  }

  it('an automatic login replaces one pending for longer than the grace; the replaced one adopts its result', async () => {
    const since = Date.now();
    const stalled = stalledHook();
    const a = env.manager(await env.openStore(), { acquire: stalled, supersedeLoginAfterMs: 300 });
    const pending = a.getAccessToken(server, { subject: 'grace' });
    while (stalled.started === 0) await sleep(10);
    await sleep(600);
    const fresh = loginHook(env.as);
    const b = env.manager(await env.openStore(), { acquire: fresh, supersedeLoginAfterMs: 300 });
    const token = await b.getAccessToken(server, { subject: 'grace' });
    assert.equal(await pending, token, 'the replaced process adopted the newer login');
    assert.equal(stalled.aborted, 1, 'the replaced flow was ended');
    assert.equal(fresh.runs, 1);
    assert.deepEqual(await logins(since), [
      { explicit: false, replaced: false },
      { explicit: false, replaced: true },
    ]);
    a.close();
    b.close();
  });

  it('within the grace, a second process joins the pending login instead of opening another', async () => {
    const first = loginHook(env.as);
    const slow: AcquireHook = async (request) => {
      await sleep(800);
      return first(request);
    };
    const a = env.manager(await env.openStore(), { acquire: slow, supersedeLoginAfterMs: 5_000 });
    const second = loginHook(env.as);
    const b = env.manager(await env.openStore(), { acquire: second, supersedeLoginAfterMs: 5_000 });
    const pending = a.getAccessToken(server, { subject: 'join' });
    await sleep(200);
    const joined = await b.getAccessToken(server, { subject: 'join' });
    assert.equal(await pending, joined);
    assert.equal(first.runs, 1);
    assert.equal(second.runs, 0, 'the second process opened no flow of its own');
    a.close();
    b.close();
  });

  it('the storm cap: past the per-minute limit, automatic logins wait instead of replacing', async () => {
    const stalled = stalledHook();
    const options = { supersedeLoginAfterMs: 100, maxLoginsPerMinute: 1 };
    const a = env.manager(await env.openStore(), { acquire: stalled, ...options, loginTimeoutMs: 4_000 });
    const pending = a.getAccessToken(server, { subject: 'storm' }).catch((e: unknown) => e);
    while (stalled.started === 0) await sleep(10);
    await sleep(300);
    const fresh = loginHook(env.as);
    const b = env.manager(await env.openStore(), { acquire: fresh, ...options, loginTimeoutMs: 1_500 });
    const refused = await b.getAccessToken(server, { subject: 'storm' }).catch((e: unknown) => e);
    assert.equal((refused as { code?: string }).code, 'WAIT_TIMEOUT', String(refused));
    assert.equal(fresh.runs, 0, 'no second tab inside the storm cap');
    assert.equal(stalled.aborted, 0, 'the pending login was left alone');
    await pending;
    a.close();
    b.close();
  });

  it('a login the person starts replaces a pending one at once, even inside the grace', async () => {
    const since = Date.now();
    const stalled = stalledHook();
    const a = env.manager(await env.openStore(), { acquire: stalled, supersedeLoginAfterMs: 60_000 });
    const pending = a.getAccessToken(server, { subject: 'explicit' });
    while (stalled.started === 0) await sleep(10);
    const person = loginHook(env.as);
    const b = env.manager(await env.openStore(), { acquire: person, supersedeLoginAfterMs: 60_000 });
    const token = await b.login(server, { subject: 'explicit' });
    assert.equal(await pending, token.token);
    assert.equal(stalled.aborted, 1);
    assert.deepEqual(await logins(since), [
      { explicit: false, replaced: false },
      { explicit: true, replaced: true },
    ]);
    a.close();
    b.close();
  });
});
