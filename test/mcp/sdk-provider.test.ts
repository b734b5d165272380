import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as Client2, StreamableHTTPClientTransport as Transport2 } from '@modelcontextprotocol/client';

import { renderNextStep } from '../../src/cli/next-step.js';
import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { createAuthFetch } from '../../src/mcp/auth-fetch.js';
import { createSdkAuthProvider } from '../../src/mcp/sdk-provider.js';
import { createSdk2AuthProvider } from '../../src/mcp/sdk2-provider.js';
import { EventType, type CredentialStore } from '../../src/store/contract.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  type FaultProxy,
  startAuthorizationServer,
  startFaultProxy,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { loginHook } from '../support/login-hook.js';
import { text } from '../support/proxy-env.js';

/**
 * The SDK adapters against the real AS and SDK server. What must hold: the SDK never talks
 * OAuth itself (no refresh, registration or authorization request of its own reaches the
 * AS: every refresh the AS sees is one the manager logged), and a 401 is recovered.
 */
describe('MCP SDK adapters', () => {
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  let mcpFront: FaultProxy;
  let store: CredentialStore;
  let manager: CredentialManager;
  let hook: ReturnType<typeof loginHook>;
  const clients: { close(): Promise<void> }[] = [];

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 2 });
    mcpFront = await startFaultProxy();
    mcp = await startMcpServer({ authorizationServer: as, frontedBy: mcpFront });
  });
  beforeEach(async () => {
    for (const c of clients.splice(0)) await c.close().catch(() => undefined);
    manager?.close();
    store = createMemoryStore();
    hook = loginHook(as);
    manager = new CredentialManager({ store, logger: silentLogger, acquire: hook });
    as.counters.reset();
  });
  after(async () => {
    for (const c of clients.splice(0)) await c.close().catch(() => undefined);
    manager.close();
    await mcp.close();
    await mcpFront.close();
    await as.close();
  });

  async function sdk1(options: { withFetch?: boolean; interactive?: boolean } = {}): Promise<Client> {
    const transport = new StreamableHTTPClientTransport(new URL(mcp.url), {
      authProvider: createSdkAuthProvider(mcp.url, {
        manager,
        ...(options.interactive === undefined ? {} : { interactive: options.interactive }),
      }),
      ...(options.withFetch === true ? { fetch: createAuthFetch(mcp.url, { manager }) } : {}),
    });
    const client = new Client({ name: 'sdk1-host', version: '1' });
    clients.push(client);
    await client.connect(transport);
    return client;
  }

  async function sdk2(): Promise<Client2> {
    const transport = new Transport2(new URL(mcp.url), {
      authProvider: createSdk2AuthProvider(mcp.url, { manager }),
    });
    const client = new Client2({ name: 'sdk2-host', version: '1' });
    clients.push(client);
    await client.connect(transport);
    return client;
  }

  async function refreshesLogged(): Promise<number> {
    const events = await store.readEvents({ limit: 10_000 });
    return events.filter((e) => e.type === EventType.REFRESHED).length;
  }

  /**
   * The server rejects the next request's token although it has not expired, as after a
   * signing-key rotation: a 401 injected in front of it, once. The grant stays good.
   */
  function rejectNextToken(): void {
    mcpFront.inject({
      method: 'POST',
      action: {
        type: 'status',
        status: 401,
        headers: { 'www-authenticate': 'Bearer error="invalid_token"' },
      },
      times: 1,
    });
  }

  async function callsFor(
    clientsToUse: readonly {
      callTool(params: { name: string; arguments: Record<string, unknown> }): Promise<unknown>;
    }[],
    ms: number,
  ): Promise<number> {
    let failures = 0;
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const results = await Promise.allSettled(
        clientsToUse.map((c, i) => c.callTool({ name: 'echo', arguments: { text: `c${i}` } })),
      );
      results.forEach((r, i) => {
        if (r.status === 'rejected' || text(r.value) !== `c${i}`) {
          failures++;
          if (process.env['DEBUG_SDK'] !== undefined)
            console.error(r.status === 'rejected' ? r.reason : r.value);
        }
      });
      await new Promise((r) => setTimeout(r, 100));
    }
    return failures;
  }

  it('1.x: an empty store logs in once through latchkey, and the SDK never talks OAuth', async () => {
    const client = await sdk1();
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'hi' } })), 'hi');
    assert.equal(hook.runs, 1);
    assert.equal(as.counters.count('registration'), 0, 'the SDK registered no client of its own');
  });

  it('1.x: four clients across 6 s of 2-s tokens: 0 failures, every refresh is the manager’s', async () => {
    await manager.login(mcp.url);
    const hosts = await Promise.all([sdk1(), sdk1(), sdk1(), sdk1()]);
    assert.equal(await callsFor(hosts, 6_000), 0);
    const atAs = as.counters.count('refresh_token');
    assert.ok(atAs >= 2, `tokens were refreshed (${atAs})`);
    assert.equal(atAs, await refreshesLogged(), 'no refresh request but the manager’s');
    assert.equal(as.counters.count('refresh_token', 'invalid_grant'), 0);
    assert.equal(mcp.counters.count('auth', 'invalid_token'), 0, 'no expired token was sent');
    assert.equal(hook.runs, 1);
  });

  it('1.x: a token the server rejects early costs one UnauthorizedError; the retry works after one refresh', async () => {
    await manager.login(mcp.url);
    const client = await sdk1();
    const authorizations = as.counters.count('authorization');
    rejectNextToken();
    await assert.rejects(client.callTool({ name: 'echo', arguments: { text: 'a' } }), (e: unknown) => {
      return e instanceof UnauthorizedError;
    });
    assert.equal(as.counters.count('refresh_token', 'ok'), 1);
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'b' } })), 'b');
    assert.equal(as.counters.count('registration'), 0);
    assert.equal(as.counters.count('authorization'), authorizations, 'no authorization request');
    assert.equal(hook.runs, 1, 'no new login');
  });

  it('1.x with createAuthFetch: a token the server rejects early is invisible to the host', async () => {
    await manager.login(mcp.url);
    const client = await sdk1({ withFetch: true });
    rejectNextToken();
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'c' } })), 'c');
    assert.equal(as.counters.count('refresh_token', 'ok'), 1);
  });

  it('1.x, not interactive, no credential: LOGIN_REQUIRED naming the server', async () => {
    await assert.rejects(sdk1({ interactive: false }), (error: unknown) => {
      assert.ok(isLatchkeyError(error), String(error));
      assert.equal(error.code, 'LOGIN_REQUIRED');
      assert.equal(error.server, mcp.url);
      assert.ok(error.next !== undefined, 'a next action');
      assert.equal(error.next.kind, 'login');
      assert.equal(error.next.server, mcp.url);
      assert.match(renderNextStep(error.next), /latchkey login/);
      return true;
    });
    assert.equal(hook.runs, 0);
  });

  it('2.x: four clients across 6 s of 2-s tokens, then a token rejected early: 0 failures', async () => {
    await manager.login(mcp.url);
    const hosts = await Promise.all([sdk2(), sdk2(), sdk2(), sdk2()]);
    assert.equal(await callsFor(hosts, 6_000), 0);
    assert.equal(as.counters.count('refresh_token'), await refreshesLogged());
    assert.equal(as.counters.count('refresh_token', 'invalid_grant'), 0);
    const before = as.counters.count('refresh_token', 'ok');
    rejectNextToken();
    assert.equal(await callsFor(hosts.slice(0, 1), 50), 0, 'onUnauthorized refreshed and the SDK resent');
    assert.equal(as.counters.count('refresh_token', 'ok'), before + 1);
    assert.equal(as.counters.count('registration'), 0);
  });
});
