// /mcp/{upstream} with user JWTs: a tiny IdP (an ES256 key pair, its JWKS and OpenID
// metadata, found by discovery) signs the tokens; the gateway, the AS, the MCP server, the
// store and the SDK host are the real ones.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { McpError } from '@modelcontextprotocol/sdk/types.js';

import {
  INITIALIZE,
  type McpEnv,
  postRpc,
  startMcpEnv,
  startTestIssuer,
  type TestIssuer,
} from './mcp-env.js';

const AUDIENCE = 'https://gw.example.com/mcp';

describe('latchkey serve: user JWTs on /mcp/{upstream}', () => {
  let env: McpEnv;
  let idp: TestIssuer;
  let otherIdp: TestIssuer;

  before(async () => {
    idp = await startTestIssuer();
    otherIdp = await startTestIssuer();
    env = await startMcpEnv({ accessTokenTtl: 60, jwt: { issuer: idp.issuer, audience: AUDIENCE } });
    await env.connect('alice', 'alice-at-as');
  });

  after(async () => {
    await env.close();
    await idp.close();
    await otherIdp.close();
  });

  async function initializeWith(authorization: string | undefined, path = '/mcp/demo'): Promise<Response> {
    return postRpc(
      `${env.serve.url}${path}`,
      INITIALIZE,
      authorization === undefined ? {} : { authorization },
    );
  }

  it("a valid JWT's sub is the subject: alice's tools/call runs with alice's credential", async () => {
    const jwt = await idp.sign({ sub: 'alice', aud: AUDIENCE });
    const host = await env.host('/mcp/demo', { authorization: `Bearer ${jwt}` });
    const result = (await host.callTool({ name: 'whoami' })) as { content: { text: string }[] };
    assert.equal(result.content[0]?.text, 'alice-at-as');
    assert.ok(!env.logLines.join('\n').includes(jwt), 'the JWT is never logged');
  });

  it("bob's valid JWT never reaches alice's connection", async () => {
    const jwt = await idp.sign({ sub: 'bob', aud: AUDIENCE });
    const host = await env.host('/mcp/demo', { authorization: `Bearer ${jwt}` });
    const error = await host.callTool({ name: 'whoami' }).then(
      () => assert.fail('bob was served'),
      (e: unknown) => e as McpError,
    );
    assert.ok(error instanceof McpError);
    assert.match(error.message, /\/\?connect=demo/, 'bob is told to connect');
  });

  it('refuses a JWT for another audience, an expired one, one from another issuer, a forged one, and none', async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, string | undefined][] = [
      ['other audience', `Bearer ${await idp.sign({ sub: 'alice', aud: 'https://other.example.com' })}`],
      ['expired', `Bearer ${await idp.sign({ sub: 'alice', aud: AUDIENCE, exp: now - 120 })}`],
      ['other issuer', `Bearer ${await otherIdp.sign({ sub: 'alice', aud: AUDIENCE })}`],
      [
        'signed by another key in the name of the issuer',
        `Bearer ${await otherIdp.sign({ sub: 'alice', aud: AUDIENCE, iss: idp.issuer })}`,
      ],
      ['an app key', `Bearer ${env.key}`],
      ['no token', undefined],
    ];
    for (const [label, authorization] of cases) {
      const answer = await initializeWith(authorization);
      assert.equal(answer.status, 401, label);
      const body = (await answer.json()) as { error: string };
      assert.equal(body.error, 'unauthorized', label);
      assert.match(answer.headers.get('www-authenticate') ?? '', /^Bearer/, label);
    }
  });

  it('a JWT is not an app key: /v1 routes refuse it, even for its own subject', async () => {
    const jwt = await idp.sign({ sub: 'alice', aud: AUDIENCE });
    const token = await fetch(`${env.serve.url}/v1/subjects/alice/connections/demo/token`, {
      headers: { authorization: `Bearer ${jwt}` },
    });
    assert.equal(token.status, 401);
    const viaKeyRoute = await initializeWith(`Bearer ${jwt}`, '/v1/subjects/alice/mcp/demo');
    assert.equal(viaKeyRoute.status, 401);
  });
});
