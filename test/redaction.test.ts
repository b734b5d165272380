import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { cliMessage } from '../src/cli/next-step.js';
import { fingerprint, redactToken, redactValue, SecretRegistry } from '../src/redact.js';
import { ErrorCode, LatchkeyError, loginRequired } from '../src/errors.js';
import { createLogger } from '../src/log.js';

describe('redaction', () => {
  it('never shows any part of a token, only a stable fingerprint', () => {
    const token = 'tok_' + 'x'.repeat(40);
    const shown = redactToken(token);
    assert.ok(!shown.includes('xxxx'));
    assert.equal(shown, redactToken(token));
    assert.equal(fingerprint(token).length, 10);
  });

  it('scrubs registered secrets, bearer headers, JWTs and form fields from text', () => {
    const registry = new SecretRegistry();
    registry.add('s3cr3t-opaque-value');
    const text = [
      'saw s3cr3t-opaque-value in a message',
      'Authorization: Bearer abcdefghijklmnop',
      'jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig',
      'body refresh_token=rt-plain-123&grant_type=refresh_token',
    ].join('\n');
    const out = registry.scrub(text);
    for (const secret of [
      's3cr3t-opaque-value',
      'abcdefghijklmnop',
      'eyJhbGciOiJIUzI1NiJ9',
      'rt-plain-123',
    ]) {
      assert.ok(!out.includes(secret), `${secret} leaked: ${out}`);
    }
    assert.ok(out.includes('grant_type=refresh_token'));
  });

  it('redacts secret-named fields at any depth', () => {
    const out = redactValue({
      server: 'https://x',
      nested: { refresh_token: 'abc', list: [{ clientSecret: 'y' }] },
    });
    assert.deepEqual(out, {
      server: 'https://x',
      nested: { refresh_token: '[redacted]', list: [{ clientSecret: '[redacted]' }] },
    });
  });

  it('the logger writes no secret, whether in fields, message or error', () => {
    const lines: string[] = [];
    const registry = new SecretRegistry();
    const secret = 'opaque-token-value-0123456789';
    registry.add(secret);
    const log = createLogger({ level: 'debug', write: (l) => lines.push(l), registry }).child({
      server: 'https://s',
    });
    log.info(`refreshed ${secret}`, {
      accessToken: secret,
      error: new Error(`boom ${secret}`),
      note: secret,
    });
    log.warn('json too', { token: secret });
    assert.equal(lines.length, 2);
    for (const line of lines) assert.ok(!line.includes(secret), line);
    assert.ok(lines[0]?.includes('server="https://s"'));
  });

  it('the logger respects its level', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', write: (l) => lines.push(l) });
    log.info('hidden');
    log.debug('hidden');
    log.error('shown');
    assert.deepEqual(lines.length, 1);
  });
});

describe('errors', () => {
  it('carry code, retryability, the server and the next step, and serialize without the cause', () => {
    const cause = Object.assign(new Error('inner'), { body: 'refresh_token=secret' });
    const err = loginRequired('https://mcp.example.com/mcp', 'the grant was revoked', cause);
    assert.equal(err.code, ErrorCode.LOGIN_REQUIRED);
    assert.equal(err.retryable, false);
    assert.equal(err.server, 'https://mcp.example.com/mcp');
    assert.match(err.message, /^https:\/\/mcp\.example\.com\/mcp: /);
    assert.deepEqual(err.next, { kind: 'login', server: 'https://mcp.example.com/mcp' });
    assert.doesNotMatch(err.message, /latchkey /, 'the library names no CLI command');
    assert.match(cliMessage(err), /latchkey login https:\/\/mcp\.example\.com\/mcp/);
    assert.ok(!JSON.stringify(err).includes('secret'));
    assert.ok(!Object.keys(err).includes('cause'));
    assert.ok(err instanceof LatchkeyError);
  });
});
