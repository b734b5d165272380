import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';

import { proxyEnv, type ProxyEnv, text } from '../support/proxy-env.js';

const TSX = fileURLToPath(import.meta.resolve('tsx'));
const CLI = fileURLToPath(new URL('../fixtures/latchkey-cli.ts', import.meta.url));

/** Run the latchkey CLI as its own process against the shared store. */
async function latchkey(env: ProxyEnv, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, ['--import', TSX, CLI, ...args], {
    env: { ...process.env, ...env.env },
  });
}

async function pause(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

function escape(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

describe('latchkey proxy: credentials changed by other processes', () => {
  let env: ProxyEnv;
  before(async () => {
    env = await proxyEnv();
  });
  after(async () => env.close());

  it('a grant revoked at the AS, then a login elsewhere: the running proxy resumes within 2 s', async () => {
    await env.seedLogin();
    const host = await env.host(['--login', 'never']);
    assert.equal(text(await host.client.callTool({ name: 'echo', arguments: { text: 'a' } })), 'a');
    await env.as.revokeAllGrants();
    await assert.rejects(host.client.callTool({ name: 'echo', arguments: { text: 'b' } }), (error: Error) => {
      assert.match(error.message, escape(env.url));
      assert.match(error.message, escape(`latchkey login ${env.url}`));
      return true;
    });
    const sessionsBefore = env.mcp.counters.count('session', 'created');
    await env.seedLogin();
    const loggedInAt = Date.now();
    let resumedAfter: number | undefined;
    while (resumedAfter === undefined && Date.now() - loggedInAt < 5000) {
      try {
        const result = await host.client.callTool({ name: 'echo', arguments: { text: 'c' } });
        assert.equal(text(result), 'c');
        resumedAfter = Date.now() - loggedInAt;
      } catch {
        await pause(50);
      }
    }
    assert.ok(resumedAfter !== undefined && resumedAfter < 2000, `resumed after ${resumedAfter} ms`);
    // A new login may be another account: the old session is not carried on.
    const until = Date.now() + 1000;
    while (env.mcp.counters.count('session', 'created') === sessionsBefore && Date.now() < until)
      await pause(25);
    assert.ok(env.mcp.counters.count('session', 'created') > sessionsBefore, 'a new session was made');
    await host.close();
  });

  it('latchkey logout in another process: calls fail fast, naming the server; login resumes them', async () => {
    await env.seedLogin();
    const host = await env.host();
    assert.equal(text(await host.client.callTool({ name: 'echo', arguments: { text: 'in' } })), 'in');
    const { stderr } = await latchkey(env, 'logout', env.url);
    assert.match(stderr, /Logged out of/);
    // The logout reaches the proxy through the store watch (about 250 ms).
    let failedFast = false;
    const deadline = Date.now() + 3000;
    while (!failedFast && Date.now() < deadline) {
      const started = Date.now();
      try {
        await host.client.callTool({ name: 'echo', arguments: { text: 'x' } });
        await pause(50);
      } catch (error) {
        const message = (error as Error).message;
        assert.match(message, /logged out/);
        assert.match(message, escape(`latchkey login ${env.url}`));
        assert.ok(Date.now() - started < 1000, 'the refusal is immediate');
        failedFast = true;
      }
    }
    assert.ok(failedFast, 'calls after logout must fail');
    // No login was attempted on the user's behalf after an explicit logout.
    const codes = env.as.counters.count('authorization_code');
    await pause(300);
    await assert.rejects(host.client.callTool({ name: 'echo', arguments: { text: 'y' } }), /logged out/);
    assert.equal(env.as.counters.count('authorization_code'), codes);
    await env.seedLogin();
    const deadline2 = Date.now() + 2000;
    let back = false;
    while (!back && Date.now() < deadline2) {
      back = await host.client
        .callTool({ name: 'echo', arguments: { text: 'back' } })
        .then((r) => text(r) === 'back')
        .catch(() => false);
      if (!back) await pause(50);
    }
    assert.ok(back, 'logging in again resumes the running proxy');
    await host.close();
  });

  it('latchkey reconnect makes running proxies start a new session', async () => {
    await env.seedLogin();
    const host = await env.host();
    await host.client.listTools();
    const created = env.mcp.counters.count('session', 'created');
    const { stderr } = await latchkey(env, 'reconnect', env.url);
    assert.match(stderr, /reconnect/);
    const deadline = Date.now() + 2000;
    while (env.mcp.counters.count('session', 'created') === created && Date.now() < deadline) await pause(25);
    assert.equal(env.mcp.counters.count('session', 'created'), created + 1);
    assert.equal(text(await host.client.callTool({ name: 'echo', arguments: { text: 'r' } })), 'r');
    await host.close();
  });

  it('latchkey status lists the running proxies of each server, and forgets them when they exit', async () => {
    await env.seedLogin();
    const host = await env.host();
    await host.client.listTools();
    const connections = async (): Promise<{ pid: number }[]> => {
      const { stdout } = await latchkey(env, 'status', env.url, '--json');
      const report = JSON.parse(stdout) as { credentials: { connections: { pid: number }[] }[] };
      return report.credentials.flatMap((c) => c.connections);
    };
    assert.deepEqual(
      (await connections()).map((c) => c.pid),
      [host.pid],
    );
    const { stdout } = await latchkey(env, 'status', env.url);
    assert.match(stdout, new RegExp(`connected:\\n +\\S+ +latchkey proxy, pid ${host.pid} `));
    await host.close();
    await pause(300);
    assert.deepEqual(await connections(), [], 'an exiting proxy takes its presence with it');
  });
});
