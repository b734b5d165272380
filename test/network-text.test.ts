import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { SecretRegistry } from '../src/redact.js';
import { LatchkeyError } from '../src/errors.js';
import { MESSAGE_MAX, NETWORK_TEXT_MAX, networkJson, networkText, printable } from '../src/network-text.js';

/** Any C0/C1 control, DEL, line separator or bidi control: none may survive. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;

const HOSTILE =
  'bad grant\u001b]52;c;ZWNobyBwd25lZA==\u0007\u001b[2J\u001b[H\r\nLogged in OK\u202e txt.exe\u009b31m';

describe('network text', () => {
  it('strips escape sequences, control characters and bidi overrides, keeping one line', () => {
    const out = networkText(HOSTILE, { secrets: new SecretRegistry() });
    assert.doesNotMatch(out, CONTROL);
    assert.ok(!out.includes('52;c;'), 'the OSC 52 payload goes with its escape');
    assert.ok(!out.includes('[2J'), 'the CSI parameters go with their escape');
    assert.equal(out, 'bad grant Logged in OK txt.exe');
  });

  it('caps the length with a marker naming the original length', () => {
    const huge = 'x'.repeat(5 * 1024 * 1024);
    const out = networkText(huge);
    assert.ok(out.length < NETWORK_TEXT_MAX + 40, `${out.length} characters`);
    assert.ok(out.startsWith('x'.repeat(NETWORK_TEXT_MAX)));
    assert.match(out, /… \[5242880 characters, cut\]$/);
    assert.equal(networkText('short'), 'short');
  });

  it('never splits a surrogate pair at the cut', () => {
    const out = networkText('a' + '😀'.repeat(10), { maxLength: 4 });
    assert.ok(out.startsWith('a😀…'), out);
  });

  it('scrubs registered secrets, also when an escape sequence splits them', () => {
    const registry = new SecretRegistry();
    const token = 'rt-0123456789abcdefghij';
    registry.add(token);
    const out = networkText(`invalid: rt-0123456789\u001b[0mabcdefghij echoed`, { secrets: registry });
    assert.ok(!out.includes('0123456789abcdefghij'), out);
    assert.match(out, /\[redacted #[0-9a-f]{10}\]/);
  });

  it('scrubs a secret that straddles the cut, leaving no part of it', () => {
    const registry = new SecretRegistry();
    const token = 'S'.repeat(40);
    registry.add(token);
    const out = networkText(`${'x'.repeat(480)}${token}`, { secrets: registry });
    assert.ok(!out.includes('SSSS'), out);
  });

  it('past the scanned window, a secret cut by the window is not shown either', () => {
    const registry = new SecretRegistry();
    const token = 'S'.repeat(1000);
    registry.add(token);
    // 65,200 characters of escapes, then the token across the 64 KiB window's end.
    const out = networkText(`${'\u001b[2J'.repeat(16_300)}${token}`, { secrets: registry });
    assert.ok(!out.includes('SSSS'), out);
    assert.match(out, /\[66200 characters, cut\]$/);
  });

  it('walks JSON values, keys included, without letting __proto__ through as a prototype', () => {
    const value = JSON.parse(
      '{"__proto__":{"polluted":true},"a":["\\u001b[2Jx"],"k\\u001b]0;t\\u0007":1}',
    ) as unknown;
    const out = networkJson(value) as Record<string, unknown>;
    assert.deepEqual(out['a'], ['x']);
    assert.equal(out['k'], 1);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
  });

  it('printable keeps the text whole (device user codes, URIs) and only drops controls', () => {
    const long = `https://as.example/device?user_code=${'A'.repeat(600)}`;
    assert.equal(printable(long), long);
    assert.equal(printable('WDJB-\u001b[31mMJHT'), 'WDJB-MJHT');
  });

  it('property: whatever the text, no control character, no registered secret, bounded length', () => {
    // Strings built from the characters that matter: controls, ESC, bidi, breaks and plain text.
    const alphabet = fc.constantFrom(
      '\u001b',
      '[',
      ']',
      '\u0007',
      '\u009b',
      '\u009d',
      '\\',
      '\r',
      '\n',
      '\u202e',
      '\u2066',
      '\u0000',
      '2',
      'J',
      ';',
      'a',
      'b',
      ' ',
      '😀',
    );
    const text = fc.oneof(
      fc.string({ unit: alphabet, maxLength: 200 }),
      fc.string({ unit: 'binary', maxLength: 200 }),
    );
    fc.assert(
      fc.property(text, text, fc.integer({ min: 1, max: 120 }), (before, after, max) => {
        const registry = new SecretRegistry();
        const secret = 'tok-9f8e7d6c5b4a3210';
        registry.add(secret);
        const out = networkText(`${before}${secret}${after}`, { maxLength: max, secrets: registry });
        assert.doesNotMatch(out, CONTROL);
        assert.ok(!out.includes('9f8e7d6c'), out);
        assert.ok(out.length <= max + 40, `${out.length} > ${max} + marker`);
      }),
      { numRuns: 2000 },
    );
  });

  it('every LatchkeyError message goes through the policy', () => {
    const error = new LatchkeyError('MCP_FAILED', `the server said ${HOSTILE}${'y'.repeat(10_000)}`, {
      server: 'https://mcp.example/mcp',
      retryable: false,
    });
    assert.doesNotMatch(error.message, CONTROL);
    assert.ok(error.message.length < MESSAGE_MAX + 40);
  });
});
