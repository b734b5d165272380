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

  it('keeps every pinned secret however many, and only the newest released or added ones', () => {
    const registry = new SecretRegistry(4);
    const live = Array.from({ length: 50 }, (_, i) => `live-token-${i}-${'L'.repeat(20)}`);
    for (const token of live) registry.pin(token);
    const seen = Array.from({ length: 10 }, (_, i) => `seen-token-${i}-${'S'.repeat(20)}`);
    for (const token of seen) registry.add(token);
    // 50 pinned + the 4 newest added: bounded by what is held plus the limit.
    assert.equal(registry.size, 54);
    const text = [...live, ...seen].join(' | ');
    const out = registry.scrub(text);
    for (const token of live) assert.ok(!out.includes(token), `pinned ${token} leaked`);
    for (const token of seen.slice(-4)) assert.ok(!out.includes(token), `recent ${token} leaked`);
    // The oldest added ones were forgotten: that is the bound, and they are not held anywhere.
    assert.ok(out.includes(seen[0] ?? ''));

    // Pinned twice (two holders): one release keeps it.
    const shared = `shared-token-${'X'.repeat(20)}`;
    registry.pin(shared);
    registry.pin(shared);
    registry.unpin(shared);
    for (const token of seen) registry.add(token);
    assert.ok(!registry.scrub(shared).includes(shared));
    // The last release makes it recent: still scrubbed until newer secrets push it out.
    registry.unpin(shared);
    assert.ok(!registry.scrub(shared).includes(shared));
    for (const token of seen.slice(0, 4)) registry.add(token);
    assert.equal(registry.scrub(shared), shared);
    assert.equal(registry.size, 54);
  });

  it('scrubs each occurrence, adjacent secrets and secrets sharing a prefix', () => {
    const registry = new SecretRegistry();
    const header = 'opaque-shared-prefix-of-one-as.';
    const a = `${header}payload-a.signature-aaaa`;
    const b = `${header}payload-b.signature-bbbb`;
    for (let i = 0; i < 1000; i++) registry.pin(`${header}payload-${i}.signature-${i}-zzzz`);
    registry.pin(a);
    registry.add(b);
    const out = registry.scrub(`x ${a} y ${b}${a} ${a}!`);
    assert.ok(!out.includes('payload-a') && !out.includes('payload-b'), out);
    assert.equal(out.split('[redacted #').length - 1, 4, out);
    assert.ok(out.startsWith('x [redacted #') && out.endsWith(']!'), out);
  });

  it('keeps scrubbing secrets that share their last characters as others come and go', () => {
    const registry = new SecretRegistry(1);
    // Same 8-character tail: the index holds them together, and must part them correctly.
    const a = 'first-secret-same-tail';
    const b = 'second-secret-same-tail';
    const c = 'third---secret-same-tail';
    for (const secret of [a, b, c]) registry.pin(secret);
    const text = `${a} ${b} ${c}`;
    assert.equal(registry.scrub(text).split('[redacted #').length - 1, 3);
    registry.unpin(b); // now the one recent secret
    registry.unpin(a); // pushes b out: forgotten
    assert.equal(registry.scrub(`${b}`), b);
    for (const secret of [a, c]) assert.ok(!registry.scrub(secret).includes(secret), secret);
    registry.unpin(c); // pushes a out; c, recent, is the last one with this tail
    assert.equal(registry.scrub(`${a} ${b}`), `${a} ${b}`);
    assert.ok(!registry.scrub(`x ${c} y`).includes(c));
    registry.add('unrelated-secret-value'); // pushes c out: nothing with this tail is left
    assert.equal(registry.scrub(text), text);
    assert.equal(registry.size, 1);
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
