import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { keyId } from '../../src/credential/key.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';
import {
  generations,
  loginSubjects,
  type RunningRefresher,
  runRefresher,
  tokenRequestTimes,
  until,
  worstWindow,
} from '../support/refresher-env.js';

/**
 * The fleet refresher in this process against real authorization servers (oidc-provider)
 * behind fault proxies, on a real SQLite store. Token lifetimes are a few seconds so that
 * several generations pass in a test.
 */
describe('fleet refresher', () => {
  const envs: LifecycleEnv[] = [];
  const running: RunningRefresher[] = [];
  async function env(ttl: number): Promise<LifecycleEnv> {
    const e = await lifecycleEnv({ accessTokenTtl: ttl, rotateRefreshToken: true });
    envs.push(e);
    return e;
  }
  function start(store: CredentialStore, options: Parameters<typeof runRefresher>[1] = {}): RunningRefresher {
    const r = runRefresher(store, { leaseTtlMs: 3000, requestTimeoutMs: 2000, ...options });
    running.push(r);
    return r;
  }
  afterEach(async () => {
    for (const r of running.splice(0)) await r.close();
    for (const e of envs.splice(0)) await e.close();
  });

  it('refreshes every credential ahead of expiry, once per generation, without a caller', async () => {
    const e = await env(4);
    const store = await e.openStore();
    const creds = await loginSubjects(e, store, 6);
    const expiry = new Map(creds.map((c) => [keyId(c.key), c.expiresAt ?? 0]));
    e.as.counters.reset();
    const r = start(store);
    const iterated: string[] = [];
    const iterating = (async () => {
      for await (const event of r.refresher.events()) iterated.push(event.type);
    })();
    const lateRefreshes: string[] = [];
    r.refresher.on('event', (event) => {
      if (event.type !== 'refreshed') return;
      const id = keyId(event);
      // Compared with the expiry of the generation this refresh replaced.
      if (Date.now() >= (expiry.get(id) ?? 0)) lateRefreshes.push(`${event.subject} gen ${event.generation}`);
      expiry.set(id, event.expiresAt ?? 0);
    });
    await until(
      'two generations per credential',
      async () => [...(await generations(store)).values()].every((g) => g >= 3),
      15_000,
    );
    await r.close();
    await iterating; // the async iterator ends with close()
    assert.deepEqual(
      iterated,
      r.events.map((event) => event.type),
      'events() saw every event',
    );
    assert.deepEqual(lateRefreshes, [], 'no token was refreshed after it expired');
    const refreshed = r.events.filter((event) => event.type === 'refreshed');
    const byGeneration = new Set(refreshed.map((event) => `${keyId(event)}#${event.generation}`));
    assert.equal(byGeneration.size, refreshed.length, 'each generation was produced once');
    assert.equal(
      e.as.counters.count('refresh_token', 'ok'),
      refreshed.length,
      'one request per refresh reached the AS',
    );
    assert.equal(e.as.counters.count('refresh_token', 'invalid_grant'), 0);
    assert.equal(r.refresher.stats().refreshRequests, refreshed.length);
    assert.deepEqual(await store.listLeases(), [], 'close() handed every claim back');
  });

  it('a token request slower than the lease: the holder keeps its lease, so no second instance sends the same refresh token', async () => {
    const e = await env(3);
    const store = await e.openStore();
    await loginSubjects(e, store, 2);
    const before = await generations(store);
    e.as.counters.reset();
    // Every refresh takes 2.5 s at the AS's front door; the leases last 1 s.
    e.proxy.inject({ method: 'POST', path: '/token', exact: true, action: { type: 'delay', ms: 2500 } });
    const options = { leaseTtlMs: 1000, requestTimeoutMs: 10_000 };
    const a = start(store, options);
    const b = start(store, options);
    await until(
      'two refreshes per credential',
      async () => [...(await generations(store))].every(([id, g]) => g >= (before.get(id) ?? 0) + 2),
      30_000,
    );
    await a.close();
    await b.close();
    const after = await generations(store);
    const stored = [...after].reduce((sum, [id, g]) => sum + g - (before.get(id) ?? 0), 0);
    assert.equal(e.as.counters.count('refresh_token', 'invalid_grant'), 0, 'no refresh token was sent twice');
    assert.equal(
      e.as.counters.count('refresh_token', 'ok'),
      stored,
      'every refresh that reached the AS was kept',
    );
  });

  it('spreads credentials issued together over the refresh window, by key', async () => {
    const e = await env(8);
    const store = await e.openStore();
    const creds = await loginSubjects(e, store, 8);
    const obtained = new Map(creds.map((c) => [keyId(c.key), c.obtainedAt]));
    const r = start(store);
    await until(
      'all refreshed once',
      () => r.events.filter((x) => x.type === 'refreshed').length >= 8,
      15_000,
    );
    // How long after its own login each was refreshed: without per-key jitter these would
    // all be the same 3/4 of the usable 7 s (5.25 s). The jitter window is ±10% of it (1.4 s
    // wide); 8 keys cover well over a quarter of it, except with vanishing odds (< 0.1%).
    const offsets = r.events
      .filter((x) => x.type === 'refreshed')
      .map((x) => x.seenAt - (obtained.get(keyId(x)) ?? 0));
    const range = Math.max(...offsets) - Math.min(...offsets);
    console.log(`# spread: refreshed ${Math.min(...offsets)}..${Math.max(...offsets)} ms after login`);
    assert.ok(range > 350, `refresh points spread over only ${range} ms`);
    assert.ok(Math.max(...offsets) < 7000, 'all before the mandatory point');
  });

  it('invalid_grant: needs-login with a store event and a typed event naming server, subject and reason; nothing deleted', async () => {
    const e = await env(3);
    const store = await e.openStore();
    const creds = await loginSubjects(e, store, 2);
    e.as.counters.reset();
    const fault = e.proxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      times: 1,
      action: {
        type: 'status',
        status: 400,
        body: JSON.stringify({ error: 'invalid_grant', error_description: 'grant revoked by an admin' }),
        headers: { 'content-type': 'application/json' },
      },
    });
    const r = start(store);
    await until('a needs-login event', () => r.events.some((x) => x.type === 'needs-login'), 10_000);
    const dead = r.events.find((x) => x.type === 'needs-login');
    assert.ok(dead?.type === 'needs-login');
    assert.equal(dead.server, e.server);
    assert.ok(creds.some((c) => c.key.subject === dead.subject));
    assert.equal(dead.error, 'invalid_grant');
    assert.match(dead.reason, /grant revoked by an admin/);
    assert.equal(fault.hits, 1);
    const other = creds.find((c) => c.key.subject !== dead.subject)!;
    await until(
      'the other credential refreshed',
      async () => ((await store.getCredential(other.key))?.generation ?? 0) > other.generation,
      10_000,
    );
    await sleep(1500); // a further pass must not retry the dead one
    const stored = await store.getCredential({ ...other.key, subject: dead.subject });
    assert.equal(stored?.status.state, 'needs-login', 'kept, not deleted');
    const events = await store.readEvents({ server: e.server });
    const needsLogin = events.filter((x) => x.type === 'needs-login');
    assert.equal(needsLogin.length, 1);
    assert.equal(needsLogin[0]?.subject, dead.subject);
    assert.equal(needsLogin[0]?.detail?.['error'], 'invalid_grant');
    assert.equal(events.filter((x) => x.type === 'deleted').length, 0);
    assert.equal(fault.hits, 1, 'the dead credential was not tried again');
  });

  it('429 with Retry-After at one AS pauses only that AS; the other is refreshed on time', async () => {
    const [e1, e2] = [await env(4), await env(4)];
    const store = await e1.openStore();
    const at1 = await loginSubjects(e1, store, 3, 'one');
    const at2 = await loginSubjects(e2, store, 3, 'two');
    const expiry2 = new Map(at2.map((c) => [keyId(c.key), c.expiresAt ?? 0]));
    const limited = e1.proxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      action: { type: 'rate-limit', retryAfter: 3 },
    });
    const r = start(store);
    await limited.arrived;
    const firstLimitedAt = Date.now();
    // AS 2 keeps its schedule while AS 1 is paused: each of its credentials is refreshed
    // before the token it replaces expired.
    await until(
      'AS 2 refreshed all its credentials',
      () => r.events.filter((x) => x.type === 'refreshed' && x.issuer === e2.as.issuer).length >= 3,
      10_000,
    );
    for (const event of r.events) {
      if (event.type === 'refreshed' && event.issuer === e2.as.issuer && expiry2.has(keyId(event))) {
        assert.ok(event.seenAt < expiry2.get(keyId(event))!, `${event.subject} refreshed before expiry`);
        expiry2.delete(keyId(event));
      }
    }
    // The 429's answer may still be on its way back when AS 2's refreshes are done.
    await until(
      'AS 1 paused as rate-limited',
      () =>
        r.events.some(
          (x) => x.type === 'issuer-paused' && x.issuer === e1.as.issuer && x.reason === 'rate-limited',
        ),
      10_000,
    );
    assert.ok(!r.events.some((x) => x.type === 'issuer-paused' && x.issuer === e2.as.issuer));
    await sleep(Math.max(0, firstLimitedAt + 2500 - Date.now()));
    // Requests already in flight when the first 429 came back may still arrive; nothing new
    // is sent to AS 1 until its Retry-After has passed.
    const during = tokenRequestTimes(e1.proxy.seen('/token')).filter(
      (t) => t > firstLimitedAt + 200 && t < firstLimitedAt + 2500,
    );
    assert.deepEqual(during, [], 'AS 1 was left alone during its Retry-After');
    e1.proxy.clear(limited);
    await until(
      'AS 1 refreshed after its pause',
      async () => {
        const now = await Promise.all(at1.map((c) => store.getCredential(c.key)));
        return now.every((c, i) => (c?.generation ?? 0) > at1[i]!.generation);
      },
      15_000,
    );
    assert.equal(e1.as.counters.count('refresh_token', 'invalid_grant'), 0);
  });

  it('an AS outage: nothing deleted, the backlog drains afterwards, the per-AS rate is never exceeded', async () => {
    const e = await env(2);
    const store = await e.openStore();
    const creds = await loginSubjects(e, store, 12);
    const before = await generations(store);
    const outage = e.proxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      action: { type: 'status', status: 503 },
    });
    const rate = 4;
    const burst = 2;
    const startedAt = Date.now();
    const r = start(store, {
      perIssuerRatePerSecond: rate,
      perIssuerBurst: burst,
      backoff: { initialMs: 200, maxMs: 800 },
    });
    await sleep(3000);
    assert.ok(outage.hits > 0, 'refreshes were tried during the outage');
    assert.equal((await store.listCredentials()).length, 12, 'nothing deleted during the outage');
    assert.ok((await r.refresher.backlog()) > 0, 'the outage left a backlog');
    e.proxy.clear(outage);
    const recoveredAt = Date.now();
    await until(
      'every credential refreshed after the outage',
      async () => {
        const now = await generations(store);
        return creds.every((c) => (now.get(keyId(c.key)) ?? 0) > (before.get(keyId(c.key)) ?? 0));
      },
      20_000,
    );
    console.log(`# outage: backlog of 12 drained ${Date.now() - recoveredAt} ms after recovery`);
    const all = await store.listCredentials();
    assert.equal(all.length, 12);
    const events = await store.readEvents();
    assert.equal(events.filter((x) => x.type === 'deleted' || x.type === 'needs-login').length, 0);
    assert.equal(e.as.counters.count('refresh_token', 'invalid_grant'), 0);
    // The AS's front saw every attempt, failed or not. In any window W a token bucket lets
    // through at most burst + rate * W; arrival times at the proxy carry a few ms of jitter,
    // so the window is widened by 50 ms.
    const times = tokenRequestTimes(e.proxy.seen('/token')).filter((t) => t >= startedAt); // not the logins
    for (const windowMs of [250, 1000, 3000]) {
      const worst = worstWindow(times, windowMs);
      const allowed = burst + Math.floor((rate * (windowMs + 50)) / 1000);
      assert.ok(worst.count <= allowed, `${worst.count} requests in ${windowMs} ms (allowed ${allowed})`);
    }
    assert.ok(r.events.some((x) => x.type === 'issuer-paused' && x.reason === 'unavailable'));
  });
});
