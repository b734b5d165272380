import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import * as oauth from 'oauth4webapi';

import { classifyTokenFailure } from '../../src/oauth/token-error.js';

// These feed real Response objects through oauth4webapi's own response processing, so the
// classification is checked against the errors the library really throws. The fault-proxy
// tests cover the same paths over the wire.
const as: oauth.AuthorizationServer = {
  issuer: 'https://as.example.com',
  token_endpoint: 'https://as.example.com/token',
};
const client: oauth.Client = { client_id: 'c' };

async function failureOf(response: Response): Promise<ReturnType<typeof classifyTokenFailure>> {
  try {
    await oauth.processRefreshTokenResponse(as, client, response);
  } catch (error) {
    return classifyTokenFailure(error);
  }
  throw new Error('expected the response to be rejected');
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

describe('token failure classification', () => {
  it('invalid_grant is a dead grant', async () => {
    assert.equal((await failureOf(json(400, { error: 'invalid_grant' }))).kind, 'invalid-grant');
  });

  it('invalid_client (400 or 401 with a challenge) rejects the client', async () => {
    assert.equal((await failureOf(json(400, { error: 'invalid_client' }))).kind, 'client-rejected');
    const challenged = json(
      401,
      { error: 'invalid_client' },
      { 'www-authenticate': 'Basic error="invalid_client"' },
    );
    assert.equal((await failureOf(challenged)).kind, 'client-rejected');
  });

  it('5xx, 429 and temporarily_unavailable are transient, with Retry-After kept', async () => {
    const html = new Response('<html>bad gateway</html>', {
      status: 502,
      headers: { 'content-type': 'text/html' },
    });
    assert.deepEqual(await failureOf(html), { kind: 'transient', reason: 'HTTP 502', status: 502 });
    const limited = await failureOf(
      new Response('slow down', { status: 429, headers: { 'retry-after': '3' } }),
    );
    assert.equal(limited.kind, 'transient');
    assert.equal(limited.kind === 'transient' ? limited.retryAfterMs : 0, 3000);
    const busy = await failureOf(json(400, { error: 'temporarily_unavailable' }));
    assert.equal(busy.kind, 'transient');
  });

  it('a 200 with a malformed body is transient (we cannot know what happened)', async () => {
    const garbage = new Response('{"access_tok', {
      status: 200,
      headers: { 'content-type': 'application/json' },
    });
    assert.equal((await failureOf(garbage)).kind, 'transient');
  });

  it('network errors and timeouts are transient', () => {
    const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    assert.deepEqual(classifyTokenFailure(refused), {
      kind: 'transient',
      reason: 'network error ECONNREFUSED',
    });
    const timeout = new DOMException('The operation timed out.', 'TimeoutError');
    assert.deepEqual(classifyTokenFailure(timeout), { kind: 'transient', reason: 'request timed out' });
  });

  it('interaction_required and unknown 4xx codes need the user', async () => {
    assert.equal(
      (await failureOf(json(400, { error: 'interaction_required' }))).kind,
      'interaction-required',
    );
    assert.equal((await failureOf(json(400, { error: 'something_new' }))).kind, 'interaction-required');
  });
});
