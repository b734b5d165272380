/**
 * Issue 14, point 4, on refresh: a refresh answer over a limit (a whole body, or one token)
 * is refused with RESPONSE_TOO_LARGE naming the server, and the stored credential is left
 * exactly as it was: the refused tokens are not stored and nothing is deleted or marked.
 * Real oidc-provider AS behind a rewriting front.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { ErrorCode, isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { createLogger } from '../../src/log.js';
import { createLoginHook, type LoginOptions } from '../../src/login/login.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { ResponseLimits } from '../../src/oauth/bounded-fetch.js';
import { createTokenFetch } from '../../src/oauth/token-http.js';
import {
  completeAuthorization,
  startAuthorizationServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestMcpServer,
} from '../harness/index.js';
import { startTokenRewriter, type TokenRewriter } from '../harness/token-rewriter.js';

const browser: NonNullable<LoginOptions['openBrowser']> = async (url) => {
  await fetch(await completeAuthorization(url, { subject: 'alice' }));
};

describe('refresh answers over the size limits', () => {
  let front: TokenRewriter;
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  const managers: CredentialManager[] = [];

  before(async () => {
    front = await startTokenRewriter();
    as = await startAuthorizationServer({ accessTokenTtl: 300, frontedBy: front });
    mcp = await startMcpServer({ authorizationServer: as });
  });
  after(async () => {
    for (const m of managers) m.close();
    await mcp.close();
    await as.close();
    await front.close();
  });

  for (const [what, edit, message] of [
    [
      'a 40 KiB access token',
      (body: Record<string, unknown>) => ({ ...body, access_token: 'a'.repeat(40 * 1024) }),
      /the access_token from the authorization server is 40960 bytes, over the 32768-byte limit/,
    ],
    [
      'a 200 KiB answer',
      (body: Record<string, unknown>) => ({ ...body, padding: 'p'.repeat(200 * 1024) }),
      /the authorization server response from 127\.0\.0\.1:\d+ .*past the 131072-byte limit/,
    ],
  ] as const) {
    // The global fetch, and the fleet refresher's default token fetch (token-http.ts).
    for (const tokenFetch of [undefined, createTokenFetch(ResponseLimits.endpoint)]) {
      it(`${what}${tokenFetch === undefined ? '' : ' (token fetch)'}: RESPONSE_TOO_LARGE naming the server; the stored credential is untouched`, async () => {
        const store = createMemoryStore();
        const m = new CredentialManager({
          ...(tokenFetch === undefined ? {} : { fetch: tokenFetch }),
          store,
          logger: createLogger({ level: 'error', write: () => undefined }),
          acquire: createLoginHook({ store, flow: 'browser', openBrowser: browser, timeoutMs: 60_000 }),
        });
        managers.push(m);
        const token = await m.getAccessToken(mcp.url);
        const [before] = await store.listCredentials();
        assert.ok(before !== undefined);
        front.edit = edit;
        const edited = front.edited;
        try {
          await assert.rejects(
            m.getAccessToken(mcp.url, { rejectedToken: token, interactive: false }),
            (error) => {
              assert.ok(isLatchkeyError(error), String(error));
              assert.equal(error.code, ErrorCode.RESPONSE_TOO_LARGE);
              assert.equal(error.server, mcp.url);
              assert.equal(error.retryable, false);
              assert.match(error.message, message);
              return true;
            },
          );
          assert.equal(front.edited, edited + 1, 'the refresh really got the oversized answer');
        } finally {
          front.edit = undefined;
        }
        const [after] = await store.listCredentials();
        assert.equal(after?.generation, before.generation, 'nothing from the refused answer was written');
        assert.deepEqual(after?.secrets, before.secrets);
        assert.notEqual(after?.status.state, 'needs-login');
      });
    }
  }
});
