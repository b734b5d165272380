import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';

import { CredentialManager, silentLogger } from '../../src/index.js';
import { McpConnection, McpConnectionTransport } from '../../src/subpath/mcp.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  startAuthorizationServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { loginHook } from '../support/login-hook.js';
import { text } from '../support/proxy-env.js';

/** An SDK Client over McpConnectionTransport: what the proxy survives, an embedder survives. */
describe('McpConnectionTransport', () => {
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  let manager: CredentialManager;
  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300 });
    mcp = await startMcpServer({ authorizationServer: as });
    const store = createMemoryStore();
    manager = new CredentialManager({ store, logger: silentLogger, acquire: loginHook(as) });
    await manager.getAccessToken(mcp.url);
  });
  after(async () => {
    manager.close();
    await mcp.close();
    await as.close();
  });

  it('carries an SDK Client across a server that forgot every session', async () => {
    const connection = new McpConnection({ server: mcp.url, manager, logger: silentLogger });
    const client = new Client({ name: 'embedder', version: '1.0.0' });
    await client.connect(new McpConnectionTransport(connection));
    try {
      assert.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'one' } })), 'one');
      await mcp.dropAllSessions();
      assert.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'two' } })), 'two');
      assert.equal(mcp.counters.count('session', 'not-found') >= 1, true, 'the old session was refused');
      assert.equal(connection.sessionEpoch, 1, 're-initialized once, unseen by the client');
    } finally {
      await client.close();
    }
  });
});
