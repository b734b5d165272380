import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';

import { EventType } from '../../src/store/contract.js';
import { approveDevice } from '../harness/index.js';
import { isAlive } from '../support/process.js';
import { type Host, proxyEnv, type ProxyEnv, text } from '../support/proxy-env.js';

const TSX = fileURLToPath(import.meta.resolve('tsx'));
const CLI = fileURLToPath(new URL('../fixtures/latchkey-cli.ts', import.meta.url));
const IGNORING = fileURLToPath(new URL('../fixtures/ignoring-browser.ts', import.meta.url));
const REPLAYING = fileURLToPath(new URL('../fixtures/replaying-browser.ts', import.meta.url));
const COUNTING = fileURLToPath(new URL('../fixtures/counting-browser.ts', import.meta.url));

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function lines(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await pause(50);
  }
}

/**
 * A host calling a tool every 250 ms, as an agent at work does; each call's outcome is
 * recorded with the time it settled.
 */
function busy(host: Host): { outcomes: { at: number; ok: boolean }[]; stop(): Promise<void> } {
  const outcomes: { at: number; ok: boolean }[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const ok = await host.client
        .callTool({ name: 'echo', arguments: { text: `busy-${i}` } }, undefined, { timeout: 120_000 })
        .then((r) => text(r) === `busy-${i}`)
        .catch(() => false);
      outcomes.push({ at: Date.now(), ok });
      await pause(250);
    }
  })();
  return {
    outcomes,
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** The first successful call that settled at or after `since`. */
function firstSuccessAfter(outcomes: { at: number; ok: boolean }[], since: number): number | undefined {
  return outcomes.find((o) => o.ok && o.at >= since)?.at;
}

describe('latchkey proxy: a login the person starts wins over a tab nobody is looking at', () => {
  let env: ProxyEnv;
  before(async () => {
    env = await proxyEnv({ accessTokenTtl: 300 });
  });
  after(async () => env.close());

  it('latchkey login replaces the busy proxy’s ignored tab; the proxy answers again within 2 s', async (t) => {
    await env.seedLogin();
    const ignored = join(env.home, 'ignored-tabs.log');
    const host = await env.host(['--browser'], { BROWSER: IGNORING, LK_BROWSER_LOG: ignored });
    const load = busy(host);
    await waitFor('a first good call', async () => (load.outcomes.some((o) => o.ok) ? true : undefined));
    await env.as.revokeAllGrants();
    const [oldTab] = await waitFor('the proxy to open its (ignored) tab', async () => {
      const tabs = await lines(ignored);
      return tabs.length > 0 ? tabs : undefined;
    });
    assert.ok(oldTab !== undefined);
    const oldRedirect = new URL(new URL(oldTab).searchParams.get('redirect_uri') ?? '');

    // The person gives up on that tab and logs in from a terminal.
    const replayPage = join(env.home, 'replayed-page.html');
    const codesBefore = env.as.counters.count('authorization_code', 'ok');
    const started = Date.now();
    const cli = await promisify(execFile)(
      process.execPath,
      ['--import', TSX, CLI, 'login', env.url, '--browser'],
      {
        env: {
          ...process.env,
          ...env.env,
          BROWSER: REPLAYING,
          LK_BROWSER_USER: 'terminal-user',
          LK_OLD_TABS: ignored,
          LK_OLD_TAB_USER: 'old-tab-user',
          LK_REPLAY_PAGE: replayPage,
        },
      },
    );
    const loggedInAt = Date.now();
    assert.match(cli.stderr, /Logged in to/);
    assert.ok(loggedInAt - started < 60_000, `the login took ${loggedInAt - started} ms`);

    const resumedAt = await waitFor('the busy proxy to answer again', async () =>
      firstSuccessAfter(load.outcomes, started),
    );
    t.diagnostic(
      `login took ${loggedInAt - started} ms; the proxy answered ${resumedAt - loggedInAt} ms after it`,
    );
    assert.ok(
      resumedAt - loggedInAt < 2000,
      `the proxy answered ${resumedAt - loggedInAt} ms after the login`,
    );
    await load.stop();
    assert.equal(
      text(await host.client.callTool({ name: 'whoami', arguments: {} })),
      'terminal-user',
      'the proxy adopted the terminal login',
    );

    // The replaced tab, completed late, was told so and changed nothing.
    const [status, ...html] = (await readFile(replayPage, 'utf8')).split('\n');
    assert.equal(status, '400');
    assert.match(html.join('\n'), /This sign-in was replaced/);
    assert.equal(
      env.as.counters.count('authorization_code', 'ok'),
      codesBefore + 1,
      'only the terminal login redeemed a code',
    );
    // The proxy let go of its listener, and opened no second tab.
    await assert.rejects(fetch(oldRedirect), 'nothing listens on the replaced login’s port any more');
    assert.equal((await lines(ignored)).length, 1);
    assert.match(host.stderr(), /a newer login replaced this one/);
    await host.close();
  });

  it('a proxy started 2 s after the revoke opens one new tab, and the old busy proxy recovers too', async (t) => {
    await env.seedLogin();
    const ignored = join(env.home, 'ignored-tabs-2.log');
    const oldHost = await env.host(['--browser'], { BROWSER: IGNORING, LK_BROWSER_LOG: ignored });
    const load = busy(oldHost);
    await waitFor('a first good call', async () => (load.outcomes.some((o) => o.ok) ? true : undefined));
    await env.as.revokeAllGrants();
    const revokedAt = Date.now();
    await waitFor('the old proxy’s tab', async () => ((await lines(ignored)).length > 0 ? true : undefined));
    // 2 s after the revoke; on a machine so loaded that the tab itself took most of that,
    // a little later, since what counts is how long the pending login has waited (1 s grace).
    const tabSeenAt = Date.now();
    await pause(Math.max(0, revokedAt + 2000 - Date.now(), tabSeenAt + 1500 - Date.now()));

    const launches = join(env.home, 'new-tabs.log');
    const newHost = await env.host(['--browser'], {
      BROWSER: COUNTING,
      LK_BROWSER_LOG: launches,
      LK_BROWSER_USER: 'restarted-user',
    });
    assert.equal(text(await newHost.client.callTool({ name: 'echo', arguments: { text: 'new' } })), 'new');
    const loggedInAt = Date.now();
    t.diagnostic(`the new proxy answered ${loggedInAt - revokedAt} ms after the revoke`);
    const resumedAt = await waitFor('the old busy proxy to answer again', async () =>
      firstSuccessAfter(load.outcomes, revokedAt),
    );
    await load.stop();
    t.diagnostic(`the old proxy answered ${resumedAt - loggedInAt} ms after the new login`);
    assert.ok(
      resumedAt - loggedInAt < 2000,
      `old proxy answered ${resumedAt - loggedInAt} ms after the login`,
    );
    assert.equal((await lines(launches)).length, 1, 'one new tab');
    assert.equal((await lines(ignored)).length, 1, 'the old proxy opened no second tab');
    for (const host of [oldHost, newHost])
      assert.equal(text(await host.client.callTool({ name: 'whoami', arguments: {} })), 'restarted-user');

    const store = await env.openStore();
    const started = (await store.readEvents({ server: env.url })).filter(
      (e) => e.type === EventType.LOGIN_STARTED && e.at >= revokedAt,
    );
    assert.deepEqual(
      started.map((e) => e.detail?.['replaced']),
      [false, true],
      'the new proxy replaced the pending login rather than waiting on it',
    );
    await oldHost.close();
    await newHost.close();
  });

  it('latchkey login replaces a device login waiting in a proxy’s agent; the agent adopts and ends', async () => {
    const other = await proxyEnv({ accessTokenTtl: 300, deviceFlowInterval: 1 });
    try {
      const refused = await other.host(['--device']).then(
        () => undefined,
        (error: unknown) =>
          error as { data?: { latchkey?: { verificationUri?: string; userCode?: string } } },
      );
      const pending = refused?.data?.latchkey;
      assert.ok(pending?.verificationUri !== undefined && pending.userCode !== undefined, String(refused));
      const store = await other.openStore();
      const prompt = (await store.readEvents({ server: other.url })).find(
        (e) => e.type === EventType.DEVICE_PROMPT,
      );
      assert.ok(prompt !== undefined, 'the agent published its prompt');

      const launches = join(other.home, 'tabs.log');
      const cli = await promisify(execFile)(
        process.execPath,
        ['--import', TSX, CLI, 'login', other.url, '--browser'],
        {
          env: {
            ...process.env,
            ...other.env,
            BROWSER: COUNTING,
            LK_BROWSER_LOG: launches,
            LK_BROWSER_USER: 'browser-user',
          },
        },
      );
      assert.match(cli.stderr, /Logged in to/);
      await waitFor('the agent to end', async () => (isAlive(prompt.pid) ? undefined : true), 10_000);
      // The code approved late logs nobody in: the agent stopped polling when it was replaced.
      await approveDevice(pending.verificationUri, pending.userCode, { subject: 'device-user' });
      await pause(2_500);
      assert.equal(
        other.as.counters.count('device_code', 'ok'),
        0,
        'no token was collected for the old code',
      );
      const host = await other.host(['--device']);
      assert.equal(text(await host.client.callTool({ name: 'whoami', arguments: {} })), 'browser-user');
      await host.close();
    } finally {
      await other.close();
    }
  });
});
