import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';

import { McpError } from '@modelcontextprotocol/sdk/types.js';

import type { LifecycleEvent } from '../../src/store/contract.js';
import { type Host, proxyEnv, type ProxyEnv, text } from '../support/proxy-env.js';
import { loginInto } from '../support/seed-credential.js';

const TSX = fileURLToPath(import.meta.resolve('tsx'));
const CLI = fileURLToPath(new URL('../fixtures/latchkey-cli.ts', import.meta.url));

function escape(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

async function pause(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** The `host:port` strings that identify one environment's servers (proxied and direct). */
function fingerprints(env: ProxyEnv): string[] {
  return [
    env.url,
    env.as.issuer,
    env.as.directUrl,
    env.mcp.directUrl,
    env.mcpProxy.origin,
    env.asProxy.origin,
  ]
    .map((u) => new URL(u).host)
    .filter((v, i, all) => all.indexOf(v) === i);
}

function assertNoMention(haystack: string, env: ProxyEnv, what: string): void {
  for (const mark of fingerprints(env)) {
    assert.doesNotMatch(haystack, escape(mark), `${what} mentions ${mark}:\n${haystack}`);
  }
}

async function errorOf(call: Promise<unknown>): Promise<McpError> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.ok(outcome instanceof McpError, `expected an McpError, got ${String(outcome)}`);
  return outcome;
}

describe('latchkey proxy: two servers on two ASes, one store', () => {
  let a: ProxyEnv;
  let b: ProxyEnv;
  /** The shared store's environment (a's home and key). */
  let shared: Record<string, string>;

  before(async () => {
    a = await proxyEnv({ accessTokenTtl: 300 });
    b = await proxyEnv({ accessTokenTtl: 300 });
    shared = a.env;
    await a.seedLogin('user-a');
    // b's credential, from b's AS, in a's store: as `latchkey login <b>` with the same home.
    await loginInto(await a.openStore(), b.as, b.url, { asUser: 'user-b' });
  });
  after(async () => {
    await b.close();
    await a.close();
  });

  it("b failing in every way never shows in a's errors, logs or events, nor a in b's", async () => {
    const hostA: Host = await a.host([], shared);
    const hostB: Host = await b.host(['--login', 'never', '--timeout', '20'], shared);
    const callA = async (word: string): Promise<void> => {
      assert.equal(text(await hostA.client.callTool({ name: 'echo', arguments: { text: word } })), word);
    };
    await callA('a0');
    assert.equal(text(await hostB.client.callTool({ name: 'whoami', arguments: {} })), 'user-b');
    assert.equal(text(await hostA.client.callTool({ name: 'whoami', arguments: {} })), 'user-a');
    const eventsBefore = (await latchkeyEvents(shared)).length;
    const errorsB: McpError[] = [];

    // 0. a's MCP server answers 500 while b's works: the mirror image, briefly.
    const outageA = a.mcpProxy.inject({
      method: 'POST',
      path: '/mcp',
      action: { type: 'status', status: 500 },
    });
    const [errorA, resultB] = await Promise.all([
      errorOf(hostA.client.callTool({ name: 'echo', arguments: { text: 'a-down' } })),
      hostB.client.callTool({ name: 'echo', arguments: { text: 'b0' } }),
    ]);
    a.mcpProxy.clear(outageA);
    assert.equal(text(resultB), 'b0');
    assert.match(errorA.message, escape(a.url));
    assertNoMention(`${errorA.message}\n${JSON.stringify(errorA.data)}`, b, "a's error");
    await callA('a0b');

    // 1. b's MCP server answers 500.
    const outage = b.mcpProxy.inject({
      method: 'POST',
      path: '/mcp',
      action: { type: 'status', status: 500 },
    });
    const [e1] = await Promise.all([
      errorOf(hostB.client.callTool({ name: 'echo', arguments: { text: 'b1' } })),
      callA('a1'),
    ]);
    errorsB.push(e1);
    b.mcpProxy.clear(outage);

    // 2. b's grant is revoked and b's AS is down: the refresh cannot even be tried.
    await b.as.revokeAllGrants();
    const asDown = b.asProxy.inject({ action: { type: 'status', status: 503 } });
    const [e2] = await Promise.all([
      errorOf(hostB.client.callTool({ name: 'echo', arguments: { text: 'b2' } })),
      callA('a2'),
    ]);
    errorsB.push(e2);
    // Not a pass by accident: the refresh met the outage (a transient failure), not yet the
    // revoked grant, which step 3 is there to reach.
    assert.ok(asDown.hits >= 1, "b's AS answered 503");
    const dataE2 = (e2.data as { latchkey?: { code?: string; retryable?: boolean } } | undefined)?.latchkey;
    assert.equal(dataE2?.retryable, true, JSON.stringify(e2.data));
    await callA('a3');

    // 3. b's AS is back and says invalid_grant: b needs a login (and was told not to start one).
    b.asProxy.clear(asDown);
    const [e3] = await Promise.all([
      errorOf(hostB.client.callTool({ name: 'echo', arguments: { text: 'b3' } })),
      callA('a4'),
    ]);
    errorsB.push(e3);
    assert.match(e3.message, escape(`latchkey login ${b.url}`));
    // A later call is refused the same way, at once.
    errorsB.push(await errorOf(hostB.client.callTool({ name: 'echo', arguments: { text: 'b4' } })));
    // Give the store watch time to deliver b's events to a's proxy.
    await pause(600);
    await callA('a5');

    // b's errors name b, and only b.
    for (const error of errorsB) {
      assert.match(error.message, escape(b.url));
      const data = (error.data as { latchkey?: { server?: string } } | undefined)?.latchkey;
      assert.equal(data?.server, b.url, JSON.stringify(error.data));
      assertNoMention(`${error.message}\n${JSON.stringify(error.data)}`, a, "b's error");
    }
    // b's failures are in the store's log, under b.
    const all = await latchkeyEvents(shared);
    const newEvents = all.slice(eventsBefore);
    assert.ok(
      newEvents.some((e) => e.server === b.url && e.type === 'needs-login'),
      JSON.stringify(newEvents),
    );
    const eventsB = await latchkeyEvents(shared, b.url);
    assert.ok(eventsB.every((e) => e.server === b.url));
    assertNoMention(JSON.stringify(eventsB), a, "b's events");
    // a's event log holds nothing of b.
    const eventsA = await latchkeyEvents(shared, a.url);
    assert.ok(eventsA.length > 0, 'a has events of its own');
    for (const event of eventsA) assert.equal(event.server, a.url);
    assertNoMention(JSON.stringify(eventsA), b, "a's events");
    // Nothing of b reached a's proxy: not its log, not its credential (no refresh, no login).
    assertNoMention(hostA.stderr(), b, "a's proxy log");
    assert.doesNotMatch(hostA.stderr(), /user-b/);
    assert.equal(a.as.counters.count('refresh_token'), 0, JSON.stringify(a.as.counters.snapshot()));
    assert.equal(a.as.counters.count('authorization_code'), 1, 'only the seeded login');
    // And b's proxy never spoke of a.
    assertNoMention(hostB.stderr(), a, "b's proxy log");
    assert.match(hostB.stderr(), escape(b.url));
    await hostA.close();
    await hostB.close();
  });
});

/** `latchkey events [server] --json`, run as its own process on the shared store. */
async function latchkeyEvents(env: Record<string, string>, server?: string): Promise<LifecycleEvent[]> {
  const args = ['events', ...(server === undefined ? [] : [server]), '--json', '--limit', '1000'];
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', TSX, CLI, ...args], {
    env: { ...process.env, ...env },
  });
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LifecycleEvent);
}
