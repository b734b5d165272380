/**
 * The token client's Response over bytes read whole (src/oauth/buffered-response.ts): it must
 * behave as fetch's Response does for every member a reader may use, since it answers the body
 * members itself instead of through a stream.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import * as oauth from 'oauth4webapi';

import { BufferedResponse } from '../../src/oauth/buffered-response.js';

const TOKEN = { access_token: 'at', token_type: 'Bearer', expires_in: 60 };
const bytesOf = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const json = (value: unknown, status = 200): BufferedResponse =>
  new BufferedResponse(bytesOf(value), {
    status,
    statusText: 'X',
    headers: [['Content-Type', 'application/json']],
  });

describe('BufferedResponse', () => {
  it('is a Response with the status and headers it was given', () => {
    const response = json(TOKEN, 201);
    assert.ok(response instanceof Response);
    assert.equal(response.status, 201);
    assert.equal(response.statusText, 'X');
    assert.equal(response.ok, true);
    assert.equal(response.headers.get('content-type'), 'application/json');
    assert.equal(response.bodyUsed, false);
  });

  it('reads its body once, as text, JSON or bytes, like a fetch Response', async () => {
    const response = json(TOKEN);
    assert.deepEqual(await response.json(), TOKEN);
    assert.equal(response.bodyUsed, true);
    await assert.rejects(response.text(), TypeError);
    await assert.rejects(response.arrayBuffer(), TypeError);
    assert.throws(() => response.clone(), TypeError);
    const bytes = new Uint8Array(await json(TOKEN).arrayBuffer());
    assert.deepEqual(bytes, bytesOf(TOKEN));
    assert.equal(await new BufferedResponse(new Uint8Array([0xef, 0xbb, 0xbf, 0x68]), {}).text(), 'h', 'BOM');
    await assert.rejects(new BufferedResponse(bytesOf('x').subarray(1), {}).json(), SyntaxError);
  });

  it('gives its bytes as a stream when asked for body, and is then used once read', async () => {
    const response = json(TOKEN);
    const body = response.body;
    assert.ok(body !== null);
    assert.equal(response.body, body, 'the same stream each time');
    assert.deepEqual(await new Response(body).json(), TOKEN);
    assert.equal(response.bodyUsed, true);
    await assert.rejects(response.json(), TypeError);
  });

  it('is used once its body stream is cancelled, not when the stream is only asked for', async () => {
    const response = json(TOKEN);
    assert.ok(response.body !== null);
    assert.equal(response.bodyUsed, false, 'asked for, not read');
    const clone = response.clone();
    await response.body?.cancel();
    assert.equal(response.bodyUsed, true);
    await assert.rejects(response.text(), TypeError);
    assert.deepEqual(await clone.json(), TOKEN, 'a clone taken before is its own');
  });

  it('clones and copies: a clone reads independently, a copy even after the body was read', async () => {
    const response = json(TOKEN);
    const clone = response.clone();
    assert.deepEqual(await response.json(), TOKEN);
    assert.deepEqual(await clone.json(), TOKEN);
    const copy = response.copy();
    assert.equal(copy.bodyUsed, false);
    assert.equal(copy.size, bytesOf(TOKEN).byteLength);
    assert.deepEqual(await copy.json(), TOKEN);
  });

  it('is processed by oauth4webapi: tokens and OAuth error answers', async () => {
    const as = { issuer: 'https://as.example' };
    const client = { client_id: 'c' };
    const tokens = await oauth.processRefreshTokenResponse(as, client, json(TOKEN));
    assert.equal(tokens.access_token, 'at');
    assert.equal(tokens.token_type, 'bearer');
    await assert.rejects(
      oauth.processRefreshTokenResponse(as, client, json({ error: 'invalid_grant' }, 400)),
      (error: unknown) =>
        error instanceof oauth.ResponseBodyError &&
        (error.cause as { error?: string }).error === 'invalid_grant',
    );
  });
});
