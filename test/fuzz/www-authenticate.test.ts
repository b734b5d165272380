// Fuzz: WWW-Authenticate from an untrusted server. The parser promises more than "only typed
// errors": it never throws at all, and what it returns is well-formed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { bearerChallenge, parseWwwAuthenticate } from '../../src/oauth/www-authenticate.js';
import { fuzzParameters, fuzzTimeoutMs, hostileString, PROTO_KEY } from './hostile.js';

const TOKEN_CHARS = fc.constantFrom(..."abcXYZ019!#$%&'*+-.^_`|~".split(''));
const token = fc.string({ unit: TOKEN_CHARS, minLength: 1, maxLength: 12 });
const quoted = hostileString.map((s) => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`);
const piece = fc.oneof(
  token,
  PROTO_KEY,
  quoted,
  hostileString,
  fc.constantFrom(
    'Bearer',
    'bearer',
    'Basic',
    'DPoP',
    'resource_metadata',
    'scope',
    'error',
    'error_description',
  ),
  fc.constantFrom('=', '==', ',', ', ,', ' ', '\t', '"', '\\', '"unterminated', 'abc=='),
);
/** Header values assembled from the grammar's pieces, so most of them are nearly valid. */
const headerValue = fc.oneof(
  fc.array(piece, { maxLength: 24 }).map((parts) => parts.join('')),
  fc.array(piece, { maxLength: 24 }).map((parts) => parts.join(' ')),
  fc
    .array(fc.tuple(fc.oneof(token, PROTO_KEY), fc.oneof(token, quoted)), { maxLength: 8 })
    .map((params) => `Bearer ${params.map(([k, v]) => `${k}=${v}`).join(', ')}`),
  hostileString,
);

describe('fuzz: WWW-Authenticate', () => {
  it('never throws, and every challenge it returns is well-formed', { timeout: fuzzTimeoutMs(2) }, () => {
    fc.assert(
      fc.property(fc.oneof(headerValue, fc.array(headerValue, { maxLength: 4 })), (source) => {
        const challenges = parseWwwAuthenticate(source);
        assert.ok(challenges.length <= 32 * (Array.isArray(source) ? source.length : 1));
        for (const c of challenges) {
          assert.equal(typeof c.scheme, 'string');
          assert.equal(c.scheme, c.scheme.toLowerCase());
          assert.ok(c.scheme.length > 0);
          for (const name of Object.keys(c.params)) assert.equal(typeof c.params[name], 'string');
        }
        const bearer = bearerChallenge(source);
        if (bearer !== undefined) {
          for (const s of bearer.scope ?? []) assert.ok(s.length > 0 && !/[ \t]/.test(s));
          if (bearer.resourceMetadata !== undefined) assert.equal(typeof bearer.resourceMetadata, 'string');
        }
        // A parameter named __proto__ must not have reached any prototype.
        assert.equal(Object.getPrototypeOf({}), Object.prototype);
        assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
      }),
      fuzzParameters(),
    );
  });

  it('reads headers of a Response whatever their content', { timeout: fuzzTimeoutMs(2) }, () => {
    fc.assert(
      fc.property(headerValue, (value) => {
        let headers: Headers;
        try {
          headers = new Headers({ 'www-authenticate': value });
        } catch {
          return; // not a legal header value: fetch could not hand it to us
        }
        const challenges = parseWwwAuthenticate(new Response(null, { status: 401, headers }));
        assert.deepEqual(challenges, parseWwwAuthenticate(headers.get('www-authenticate')));
      }),
      fuzzParameters(),
    );
  });
});
