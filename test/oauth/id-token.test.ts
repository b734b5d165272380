/**
 * latchkey needs the access token; an ID token it did not ask for must not cost the login.
 * A token answer with a bad ID token (HS256, no `iss`, as better-auth sends) logs in with a
 * warning, on login and on refresh. A token answer refused for any other reason says why in
 * the error the user sees, not only "malformed token response".
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { createLogger } from '../../src/log.js';
import { createLoginHook, type LoginOptions } from '../../src/login/login.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { createMemoryStore } from '../../src/store/memory.js';
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

/** An ID token as better-auth signs it: HS256 with a shared secret, and no `iss` claim. */
function hs256IdTokenWithoutIss(audience: string): string {
  const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'alice', aud: audience, iat: now, exp: now + 300 })}`;
  return `${input}.${createHmac('sha256', 'better-auth-secret').update(input).digest('base64url')}`;
}

describe('ID tokens and refused token answers', () => {
  let front: TokenRewriter;
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  const managers: CredentialManager[] = [];
  const logLines: string[] = [];

  function manager(store: CredentialStore, notes: string[]): CredentialManager {
    const m = new CredentialManager({
      store,
      // The default level: what a user sees without asking for debug output.
      logger: createLogger({ level: 'warn', write: (line) => logLines.push(line) }),
      acquire: createLoginHook({
        store,
        flow: 'browser',
        openBrowser: browser,
        timeoutMs: 60_000,
        notify: (t) => notes.push(t),
      }),
    });
    managers.push(m);
    return m;
  }

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

  it('a bad ID token is dropped with a warning; the login succeeds and the access token works', async () => {
    const store = createMemoryStore();
    const notes: string[] = [];
    front.edit = (body) => ({ ...body, id_token: hs256IdTokenWithoutIss('latchkey') });
    const edited = front.edited;
    try {
      const m = manager(store, notes);
      const token = await m.getAccessToken(mcp.url);
      assert.equal(front.edited, edited + 1, 'the login really got the bad ID token');
      assert.equal((await as.introspect(token)).active, true);
      assert.match(notes.join(''), /warning: the ID token in the token response was ignored: .*(alg|iss)/);
      const [cred] = await store.listCredentials();
      assert.equal(cred?.secrets.idToken, undefined, 'the unverified ID token is not kept');

      // The same on refresh: the refreshed token is stored, the warning is logged at warn.
      const refreshed = await m.getAccessToken(mcp.url, { rejectedToken: token, interactive: false });
      assert.notEqual(refreshed, token);
      assert.equal(front.edited, edited + 2);
      assert.ok(logLines.some((l) => /ID token in the token response was ignored/.test(l)));
    } finally {
      front.edit = undefined;
    }
  });

  it('a token answer refused for another reason says why in the error', async () => {
    const store = createMemoryStore();
    front.edit = ({ access_token: _gone, ...body }) => body;
    try {
      await assert.rejects(
        manager(store, []).getAccessToken(mcp.url),
        (e: unknown) =>
          isLatchkeyError(e) &&
          e.server === mcp.url &&
          /the token response was refused: .*access_token.*\(OAUTH_INVALID_RESPONSE\)/.test(e.message),
      );
    } finally {
      front.edit = undefined;
    }
  });
});
