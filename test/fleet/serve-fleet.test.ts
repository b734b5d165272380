// Issue 17's fleet acceptance: three `latchkey serve` processes (the built CLI, refresher on)
// on one PostgreSQL database, behind a random front door; users connected through the web
// flow (the harness's HTTP login driver, and a few in headless Chromium on the portal page);
// 30-s access tokens with rotation at the real oidc-provider AS; for LK_SERVE_FLEET_SECONDS
// (default 300) MCP hosts call tools through random instances for random users. Then one
// instance is killed with SIGKILL and the hosts keep calling through the other two.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it, type TestContext } from 'node:test';

import { chromium } from 'playwright-core';

import { createAppKey } from '../../src/serve/app-keys.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { hasServeTables, type ServeStore } from '../../src/store/serve-contract.js';
import {
  type FaultProxy,
  startAuthorizationServer,
  startFaultProxy,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { freshDatabase, type TestDatabase } from '../support/postgres.js';
import { CHROMIUM } from '../serve/portal-env.js';
import { storedRefreshes } from './fleet-env.js';
import {
  type CallRecord,
  connectByWeb,
  forEachParallel,
  Hosts,
  percentile,
  pick,
  type ServeProcess,
  spawnServe,
  startFrontDoor,
} from './serve-fleet-env.js';

const SECONDS = Number(process.env['LK_SERVE_FLEET_SECONDS'] ?? 300);
const USERS = Number(process.env['LK_SERVE_FLEET_USERS'] ?? 200);
/** Users who connect on the portal page in Chromium rather than with the HTTP driver. */
const BROWSER_USERS = existsSync(CHROMIUM) ? 3 : 0;
/** The instances' `--lease-ttl`: how soon the survivors take over the killed one's refreshes. */
const LEASE_TTL_SECONDS = 8;
/** After the kill: the lease TTL and then a refresh, so the survivors' takeovers happen. */
const AFTER_KILL_SECONDS = Number(process.env['LK_SERVE_FLEET_AFTER_KILL_SECONDS'] ?? 25);
const TOKEN_SECONDS = 30;
const HOST_WORKERS = 6;

const accountOf = (subject: string): string => `${subject}-at-as`;

interface Fleet {
  proxy: FaultProxy;
  as: TestAuthorizationServer;
  mcp: TestMcpServer;
  database: TestDatabase;
  store: ServeStore;
  home: string;
  instances: ServeProcess[];
  publicUrl: string;
  key: string;
  close(): Promise<void>;
}

async function startFleet(): Promise<Fleet> {
  const proxy = await startFaultProxy();
  const as = await startAuthorizationServer({
    accessTokenTtl: TOKEN_SECONDS,
    rotateRefreshToken: true,
    refreshTokenTtl: 24 * 3600,
    frontedBy: proxy,
  });
  const mcp = await startMcpServer({ authorizationServer: as, requiredScopes: ['mcp:tools'] });
  const database = await freshDatabase();
  const home = await mkdtemp(join(tmpdir(), 'latchkey-serve-fleet-'));
  const env = { LATCHKEY_KEY: randomBytes(32).toString('base64'), LATCHKEY_HOME: home };
  const store = await openPostgresStore({ url: database.url, env });
  assert.ok(hasServeTables(store));
  const key = (await createAppKey(store, 'fleet')).key;
  const instances: ServeProcess[] = [];
  const door = await startFrontDoor(() => instances);
  for (let i = 0; i < 3; i++)
    instances.push(
      await spawnServe({
        storeUrl: database.url,
        upstream: mcp.url,
        publicUrl: door.url,
        env,
        extraArgs: ['--lease-ttl', String(LEASE_TTL_SECONDS)],
      }),
    );
  return {
    proxy,
    as,
    mcp,
    database,
    store,
    home,
    instances,
    publicUrl: door.url,
    key,
    async close() {
      for (const i of instances) i.child.kill('SIGKILL');
      await Promise.all(instances.map((i) => i.exited));
      await door.close();
      await store.close();
      await mcp.close();
      await as.close();
      await proxy.close();
      await database.drop();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** The portal page in Chromium: the app asks for a link, the person connects at the AS. */
async function connectInBrowser(fleet: Fleet, subjects: readonly string[]): Promise<void> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    for (const subject of subjects) {
      const link = await fetch(`${pick(fleet.instances).url}/v1/subjects/${subject}/portal`, {
        method: 'POST',
        headers: { authorization: `Bearer ${fleet.key}` },
      });
      assert.equal(link.status, 201);
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(((await link.json()) as { portal_url: string }).portal_url);
      await page.locator('section[data-upstream="demo"] button', { hasText: 'Connect' }).click();
      await page.waitForSelector('input[name="login"]');
      await page.fill('input[name="login"]', accountOf(subject));
      await page.fill('input[name="password"]', 'test');
      await page.click('button[type="submit"]');
      await page.waitForSelector('button[type="submit"]');
      await page.click('button[type="submit"]');
      await page.waitForSelector('section[data-upstream="demo"][data-state="connected"]');
      await context.close();
    }
  } finally {
    await browser.close();
  }
}

/** Sum of `latchkey_refreshes_total{…outcome="refreshed"}` on one instance's /metrics. */
async function refreshedBy(instance: ServeProcess): Promise<number> {
  const text = await (await fetch(`${instance.url}/metrics`)).text();
  return [...text.matchAll(/^latchkey_refreshes_total\{[^}]*outcome="refreshed"[^}]*\} (\d+)$/gm)].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  );
}

function latency(calls: readonly CallRecord[]): string {
  const ms = calls.filter((c) => c.error === undefined).map((c) => c.ms);
  ms.sort((a, b) => a - b);
  return `p50 ${percentile(ms, 50).toFixed(1)} ms, p99 ${percentile(ms, 99).toFixed(1)} ms`;
}

const failed = (calls: readonly CallRecord[]): CallRecord[] => calls.filter((c) => c.error !== undefined);

describe('fleet: three latchkey serve processes on one PostgreSQL database', () => {
  it(`${USERS} users, ${TOKEN_SECONDS}-s tokens with rotation, MCP calls through random instances for ${SECONDS} s, then kill -9 of one`, async (t: TestContext) => {
    const fleet = await startFleet();
    const hosts = new Hosts(fleet.instances, fleet.key, accountOf);
    try {
      await run(t, fleet, hosts);
    } finally {
      await hosts.stop();
      await hosts.close();
      await fleet.close();
    }
  });
});

async function run(t: TestContext, fleet: Fleet, hosts: Hosts): Promise<void> {
  const subjects = Array.from({ length: USERS }, (_, i) => `u-${i}`);
  await steadyPhase(t, fleet, hosts, subjects);
  await killPhase(t, fleet, hosts, subjects);
}

/** Connect every user, then call through all three instances for SECONDS. */
async function steadyPhase(
  t: TestContext,
  fleet: Fleet,
  hosts: Hosts,
  subjects: readonly string[],
): Promise<void> {
  const { as, store, instances } = fleet;
  const seedStarted = Date.now();
  const byBrowser = subjects.slice(0, BROWSER_USERS);
  await connectInBrowser(fleet, byBrowser);
  await forEachParallel(subjects.slice(BROWSER_USERS), 8, (s) =>
    connectByWeb(pick(instances), fleet.key, s, accountOf(s)),
  );
  const seedSeconds = (Date.now() - seedStarted) / 1000;
  assert.equal((await store.listCredentials({ issuer: as.issuer })).length, USERS, 'every user connected');
  const signIns = as.counters.count('authorization_code', 'ok');
  const refreshedSeeding = as.counters.count('refresh_token', 'ok');

  hosts.start(subjects, [0, 1, 2], HOST_WORKERS);
  await sleep(SECONDS * 1000);
  await hosts.stop();
  const steady = [...hosts.calls];
  const refreshedSteady = as.counters.count('refresh_token', 'ok') - refreshedSeeding;
  const shares = await Promise.all(instances.map(refreshedBy));
  t.diagnostic(
    `serve fleet: ${USERS} users (${byBrowser.length} in Chromium) connected in ${seedSeconds.toFixed(1)} s; ` +
      `${SECONDS} s: ${steady.length} MCP calls (${(steady.length / SECONDS).toFixed(1)}/s) on ` +
      `${hosts.clientCount} host sessions, ${failed(steady).length} failed, ${latency(steady)}; ` +
      `${refreshedSteady} refreshes at the AS (${(refreshedSteady / SECONDS).toFixed(1)}/s), ` +
      `by instance ${shares.join(' / ')}`,
  );
  assert.deepEqual(failed(steady).slice(0, 10), [], 'every MCP call succeeded');
  assert.ok(steady.length > SECONDS, `the hosts kept calling (${steady.length} calls)`);
  assert.equal(as.counters.count('refresh_token', 'invalid_grant'), 0, 'no invalid_grant');
  assert.equal(as.counters.count('authorization_code', 'ok'), signIns, 'nobody had to sign in again');
  assert.ok(
    shares.every((n) => n > 0),
    `every instance refreshed some: ${shares.join(' / ')}`,
  );
}

/** SIGKILL one instance, call through the other two, stop them, and account for every refresh. */
async function killPhase(
  t: TestContext,
  fleet: Fleet,
  hosts: Hosts,
  subjects: readonly string[],
): Promise<void> {
  const { as, store, instances } = fleet;
  // kill -9 one instance. Its leases stay in the store until they expire: those credentials
  // are the only ones it can have left half-done (a rotated refresh token whose answer died).
  const victim = instances[0]!;
  // At the hardest moment: while it holds a refresh lease (refreshes come every ~0.1-0.4 s
  // across the fleet), so that the takeover is exercised and not only hoped for.
  const holding = await untilHolding(store, victim.child.pid, 30_000);
  victim.child.kill('SIGKILL');
  await victim.exited;
  const killedAt = Date.now();
  const held = new Set(
    (await store.listLeases()).filter((l) => l.pid === victim.child.pid).map((l) => l.key.subject),
  );
  hosts.calls.length = 0;
  hosts.start(subjects, [1, 2], HOST_WORKERS);
  await sleep(AFTER_KILL_SECONDS * 1000);
  await hosts.stop();
  const windowEnd = Date.now();
  const afterKill = [...hosts.calls];
  const codes = await Promise.all(instances.slice(1).map((i) => i.stop()));
  codes.forEach((code, i) =>
    assert.equal(code, 0, `instance ${i + 1} stopped cleanly:\n${instances[i + 1]?.stderr.join('\n')}`),
  );

  const creds = await store.listCredentials({ issuer: as.issuer });
  const lost = creds.filter((c) => c.status.state === 'needs-login').map((c) => c.key.subject);
  const atAs = as.counters.count('refresh_token', 'ok');
  const outsideHeld = afterKill.filter((c) => !held.has(c.subject));
  t.diagnostic(
    `serve fleet kill -9 (${holding ? 'while holding a lease' : 'no lease seen in 30 s'}): the killed instance held ${held.size} leases; in ${AFTER_KILL_SECONDS} s after ` +
      `it, ${afterKill.length} MCP calls through the other two, ${failed(afterKill).length} failed ` +
      `(${failed(outsideHeld).length} for users it did not hold), ${latency(afterKill)}; ` +
      `${lost.length} credentials lost in flight; ${atAs} refreshes at the AS in all, ` +
      `${storedRefreshes(creds)} stored generations`,
  );
  assert.equal(creds.length, USERS, 'nothing deleted');
  assert.deepEqual(failed(outsideHeld).slice(0, 10), [], 'calls through the survivors succeed');
  assert.ok(outsideHeld.length > AFTER_KILL_SECONDS, 'the hosts kept calling after the kill');
  for (const subject of lost)
    assert.ok(held.has(subject), `${subject} lost but not held by the killed instance`);
  for (const c of failed(afterKill))
    assert.ok(held.has(c.subject), `${c.subject} failed (${c.error}) but not held by the killed instance`);
  // The survivors took over every other refresh the killed instance held once its lease ran
  // out: left alone, its access token (refreshed at about 3/4 of 30 s) would be expired by now.
  for (const c of creds.filter((c) => held.has(c.key.subject) && !lost.includes(c.key.subject)))
    assert.ok((c.expiresAt ?? 0) > windowEnd, `${c.key.subject}: its refresh was not taken over`);
  // A lost one was taken over too: only a survivor can have found its refresh token spent and
  // written needs-login, after the kill. So every held lease was acted on, lost or not.
  for (const c of creds.filter((c) => lost.includes(c.key.subject)))
    assert.ok(
      (c.status.lastError?.at ?? 0) >= killedAt,
      `${c.key.subject}: needs-login not written by a survivor`,
    );
  // One refresh per stored generation; a refresh whose answer died with the killed instance is
  // the only kind the store never saw, and its reuse the only invalid_grant.
  assert.equal(atAs, storedRefreshes(creds) + lost.length, 'exactly one refresh per generation at the AS');
  assert.equal(
    as.counters.count('refresh_token', 'invalid_grant'),
    lost.length,
    'invalid_grant only for losses',
  );
}

/** Poll the store until the instance with `pid` holds a lease; false after `ms`. */
async function untilHolding(store: ServeStore, pid: number | undefined, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if ((await store.listLeases()).some((l) => l.pid === pid)) return true;
    await sleep(10);
  }
  return false;
}
