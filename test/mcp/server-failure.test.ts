/**
 * A server that answers 500 to a token it rejects (the MCP SDK's example verifier does) must
 * not send the user to `latchkey doctor`, which checks the OAuth chain and finds nothing: the
 * error says the failure is the server's own, and what may still help.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { renderNextStep } from '../../src/cli/next-step.js';
import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { connectMcpClient } from '../../src/mcp/client.js';
import { unavailable } from '../../src/mcp/rpc-errors.js';
import { HttpStatusError } from '../../src/mcp/wire-errors.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { obtainTokens, startAuthorizationServer, type TestAuthorizationServer } from '../harness/index.js';
import { type QuirkyResourceServer, startQuirkyResourceServer } from '../harness/quirky-resource-server.js';

describe("a server's own 5xx", () => {
  let as: TestAuthorizationServer;
  let server: QuirkyResourceServer;
  const managers: CredentialManager[] = [];

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300 });
    server = await startQuirkyResourceServer({ authorizationServer: as, rejectedTokenStatus: 500 });
  });
  after(async () => {
    for (const m of managers) m.close();
    await server.close();
    await as.close();
  });

  it('connect: a 500 for a rejected token is named as the server failing, with no doctor advice', async () => {
    const manager = new CredentialManager({ store: createMemoryStore(), logger: silentLogger });
    managers.push(manager);
    const tokens = await obtainTokens(as, { resource: server.url, subject: 'alice' });
    await manager.saveAcquired(server.url, {
      issuer: tokens.issuer,
      clientId: tokens.clientId,
      requestedAt: tokens.requestedAt,
      response: tokens.response,
    });
    assert.ok((await as.revokeAllGrants()) >= 1, 'the AS no longer vouches for the token');

    const error = await connectMcpClient(server.url, { manager }).then(
      () => assert.fail('the server answers 500'),
      (e: unknown) => e,
    );
    assert.ok(isLatchkeyError(error));
    assert.equal(error.server, server.url);
    assert.match(error.message, /HTTP 500/);
    assert.match(error.message, /failure inside the MCP server itself/);
    assert.doesNotMatch(error.message, /doctor/);
    assert.match(error.nextStep ?? '', /report it to the operator/);
    assert.ok(error.next !== undefined, 'a next action');
    assert.equal(error.next.kind, 'operator');
    // The CLI words the login that may help as the command for this server.
    assert.match(renderNextStep(error.next), new RegExp(`latchkey login ${server.url}`));
  });

  it('the proxy answers the host with the same words for a 5xx, and keeps 4xx wording as it was', () => {
    const failed = unavailable(server.url, 'tools/list', new HttpStatusError(503, false, undefined, ''));
    assert.match(failed.message, /failure inside the MCP server itself/);
    assert.match(failed.message, /report it to the operator/);
    const refused = unavailable(server.url, 'tools/list', new HttpStatusError(404, false, undefined, ''));
    assert.doesNotMatch(refused.message, /inside the MCP server/);
  });
});
