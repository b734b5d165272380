import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';

import * as oauth from 'oauth4webapi';

import { processTokenResponse } from '../../src/oauth/grants.js';
import { classifyTokenFailure } from '../../src/oauth/token-error.js';

// Real Responses through oauth4webapi's own processing, as in token-error.test.ts; the
// end-to-end case (a real AS behind a rewriting front) is test/oauth/id-token.test.ts.
const as: oauth.AuthorizationServer = {
  issuer: 'https://as.example.com',
  token_endpoint: 'https://as.example.com/token',
  id_token_signing_alg_values_supported: ['RS256'],
};
const client: oauth.Client = { client_id: 'c' };
const refresh = (r: Response): Promise<oauth.TokenEndpointResponse> =>
  oauth.processRefreshTokenResponse(as, client, r);

function json(body: unknown): Response {
  return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
}

function hs256WithoutIss(): string {
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: 'HS256' })}.${b64({ sub: 'u', aud: 'c', iat: now, exp: now + 60 })}`;
  return `${input}.${createHmac('sha256', 'k').update(input).digest('base64url')}`;
}

describe('token answers with an ID token latchkey did not need', () => {
  it('a bad ID token is dropped with a warning naming the reason; the rest is kept', async () => {
    const warnings: string[] = [];
    const result = await processTokenResponse(
      { warn: (t) => warnings.push(t) },
      json({
        access_token: 'at',
        token_type: 'Bearer',
        expires_in: 60,
        refresh_token: 'rt',
        id_token: hs256WithoutIss(),
      }),
      refresh,
    );
    assert.equal(result.access_token, 'at');
    assert.equal(result.refresh_token, 'rt');
    assert.equal(result.id_token, undefined);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /ID token .* ignored: .*alg.*\(OAUTH_/);
  });

  it('an answer without an ID token is processed once, without warnings', async () => {
    const warnings: string[] = [];
    const result = await processTokenResponse(
      { warn: (t) => warnings.push(t) },
      json({
        access_token: 'at',
        token_type: 'bearer',
      }),
      refresh,
    );
    assert.equal(result.access_token, 'at');
    assert.deepEqual(warnings, []);
  });

  it('an answer bad beyond its ID token is still refused, with the real reason', async () => {
    const warnings: string[] = [];
    const error = await processTokenResponse(
      { warn: (t) => warnings.push(t) },
      json({
        token_type: 'bearer',
        id_token: hs256WithoutIss(),
      }),
      refresh,
    ).then(
      () => assert.fail('no access token'),
      (e: unknown) => e,
    );
    const failure = classifyTokenFailure(error);
    assert.equal(failure.kind, 'transient');
    assert.match(
      failure.kind === 'transient' ? failure.reason : '',
      /refused: .*access_token.*OAUTH_INVALID_RESPONSE/,
    );
    assert.deepEqual(warnings, [], 'nothing was accepted, so nothing to warn about');
  });

  it('an unknown token_type is refused by name, not as a network error', async () => {
    const error = await processTokenResponse(
      {},
      json({ access_token: 'at', token_type: 'mac' }),
      refresh,
    ).then(
      () => assert.fail('mac tokens are not supported'),
      (e: unknown) => e,
    );
    const failure = classifyTokenFailure(error);
    assert.match(
      failure.kind === 'transient' ? failure.reason : '',
      /refused: unsupported `token_type` value/,
    );
  });
});
