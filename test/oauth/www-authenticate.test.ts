import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import type { Challenge } from '../../src/oauth/types.js';
import { bearerChallenge, parseWwwAuthenticate } from '../../src/oauth/www-authenticate.js';

describe('parseWwwAuthenticate: examples', () => {
  it('RFC 9110 §11.6.1 example: two challenges, escaped quotes, a token value', () => {
    const header = 'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"';
    assert.deepEqual(parseWwwAuthenticate(header), [
      { scheme: 'newauth', params: { realm: 'apps', type: '1', title: 'Login to "apps"' } },
      { scheme: 'basic', params: { realm: 'simple' } },
    ]);
  });

  it('RFC 6750 §3 and an MCP 401 challenge (RFC 9728 §5.1)', () => {
    assert.deepEqual(
      parseWwwAuthenticate(
        'Bearer realm="example", error="invalid_token", error_description="The access token expired"',
      ),
      [
        {
          scheme: 'bearer',
          params: { realm: 'example', error: 'invalid_token', error_description: 'The access token expired' },
        },
      ],
    );
    assert.deepEqual(
      parseWwwAuthenticate(
        'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="files:read files:write"',
      ),
      [
        {
          scheme: 'bearer',
          params: {
            resource_metadata: 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp',
            scope: 'files:read files:write',
          },
        },
      ],
    );
  });

  it('commas and equals signs inside quoted strings do not split anything', () => {
    assert.deepEqual(parseWwwAuthenticate('Bearer a="x, y=z, Basic q", b=c'), [
      { scheme: 'bearer', params: { a: 'x, y=z, Basic q', b: 'c' } },
    ]);
  });

  it('token68, with and without padding, next to auth-param challenges', () => {
    assert.deepEqual(parseWwwAuthenticate('Negotiate YII+/x==, Bearer realm=x, Basic abc'), [
      { scheme: 'negotiate', params: {}, token68: 'YII+/x==' },
      { scheme: 'bearer', params: { realm: 'x' } },
      { scheme: 'basic', params: {}, token68: 'abc' },
    ]);
  });

  it('scheme and parameter names are case-insensitive; values keep their case', () => {
    assert.deepEqual(parseWwwAuthenticate('BeArEr SCOPE="Read", Resource_Metadata=HTTPS'), [
      { scheme: 'bearer', params: { scope: 'Read', resource_metadata: 'HTTPS' } },
    ]);
  });

  it('whitespace around "=" (BWS), tabs, and empty list elements', () => {
    assert.deepEqual(parseWwwAuthenticate(' , Bearer\trealm = "a" ,, scope\t=\tb , ,Basic'), [
      { scheme: 'bearer', params: { realm: 'a', scope: 'b' } },
      { scheme: 'basic', params: {} },
    ]);
  });

  it('several header values, as an array, a Headers object or a Response', () => {
    const values = ['Basic realm="a"', 'Bearer scope="s", DPoP algs="ES256"'];
    const expected: Challenge[] = [
      { scheme: 'basic', params: { realm: 'a' } },
      { scheme: 'bearer', params: { scope: 's' } },
      { scheme: 'dpop', params: { algs: 'ES256' } },
    ];
    assert.deepEqual(parseWwwAuthenticate(values), expected);
    const headers = new Headers();
    for (const value of values) headers.append('WWW-Authenticate', value);
    assert.deepEqual(parseWwwAuthenticate(headers), expected);
    assert.deepEqual(parseWwwAuthenticate(new Response(null, { status: 401, headers })), expected);
    assert.deepEqual(parseWwwAuthenticate(new Headers()), []);
    assert.deepEqual(parseWwwAuthenticate(undefined), []);
    assert.deepEqual(parseWwwAuthenticate(null), []);
  });

  it('a repeated parameter keeps its first value, so a later one cannot override it', () => {
    assert.deepEqual(
      parseWwwAuthenticate('Bearer resource_metadata="https://a", Resource_Metadata="https://b"'),
      [{ scheme: 'bearer', params: { resource_metadata: 'https://a' } }],
    );
  });

  it('parameter names like __proto__ stay plain keys', () => {
    const [challenge] = parseWwwAuthenticate('Bearer __proto__="x", constructor=y');
    assert.ok(challenge !== undefined);
    assert.equal(Object.getPrototypeOf(challenge.params), Object.prototype);
    assert.deepEqual(Object.entries(challenge.params), [
      ['__proto__', 'x'],
      ['constructor', 'y'],
    ]);
  });

  it('lenient where servers are sloppy: a missing comma between parameters', () => {
    assert.deepEqual(parseWwwAuthenticate('Bearer realm="a" scope="b" Basic realm="c"'), [
      { scheme: 'bearer', params: { realm: 'a', scope: 'b' } },
      { scheme: 'basic', params: { realm: 'c' } },
    ]);
  });

  it('hostile input: returns what it can, skipping broken elements', () => {
    const cases: [string, Challenge[]][] = [
      ['', []],
      [',,, ,', []],
      ['=', []],
      ['"', []],
      ['realm="x", Bearer scope=a', [{ scheme: 'bearer', params: { scope: 'a' } }]],
      [
        'Bearer realm="unterminated, scope=x',
        [{ scheme: 'bearer', params: { realm: 'unterminated, scope=x' } }],
      ],
      ['Bearer @@@, scope="kept"', [{ scheme: 'bearer', params: { scope: 'kept' } }]],
      ['Bearer realm="a\\', [{ scheme: 'bearer', params: { realm: 'a\\' } }]],
      ['@@@ "a, b", Basic', [{ scheme: 'basic', params: {} }]],
      // An empty value is no auth-param; by the grammar it is token68 (padding included).
      [
        'Bearer scope=, Basic',
        [
          { scheme: 'bearer', params: {}, token68: 'scope=' },
          { scheme: 'basic', params: {} },
        ],
      ],
      ['Bearer x==y', [{ scheme: 'bearer', params: {} }]],
    ];
    for (const [input, expected] of cases) {
      assert.deepEqual(parseWwwAuthenticate(input), expected, JSON.stringify(input));
    }
  });

  it('huge and pathological values are parsed in linear time and bounded', () => {
    const started = Date.now();
    const inputs = [
      `Bearer realm="${'\\"'.repeat(500_000)}`,
      'Bearer '.repeat(200_000),
      `Bearer ${'a=b, '.repeat(200_000)}`,
      ','.repeat(1_000_000),
      `Bearer ${'='.repeat(1_000_000)}`,
    ];
    for (const input of inputs) {
      const challenges = parseWwwAuthenticate(input);
      assert.ok(challenges.length <= 32);
      for (const c of challenges) assert.ok(Object.keys(c.params).length <= 64);
    }
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });
});

describe('bearerChallenge', () => {
  it('maps the MCP parameters and splits scope on whitespace', () => {
    assert.deepEqual(
      bearerChallenge(
        'DPoP algs="ES256", Bearer error="insufficient_scope", scope="a  b\tc", resource_metadata="https://m/x", error_description="need c"',
      ),
      {
        // The header offered DPoP as well: the server takes DPoP tokens (oauth/dpop.ts wantsDPoP).
        dpop: true,
        resourceMetadata: 'https://m/x',
        scope: ['a', 'b', 'c'],
        error: 'insufficient_scope',
        errorDescription: 'need c',
      },
    );
  });

  it('the first Bearer challenge only; none is undefined; an empty scope is omitted', () => {
    assert.deepEqual(bearerChallenge(['Bearer scope="first"', 'Bearer scope="second"']), {
      scope: ['first'],
    });
    assert.equal(bearerChallenge('Basic realm="x"'), undefined);
    assert.equal(bearerChallenge(new Response(null, { status: 401 })), undefined);
    assert.deepEqual(bearerChallenge('Bearer scope="  "'), {});
    assert.deepEqual(bearerChallenge('bearer'), {});
  });
});

// ---------------------------------------------------------------------------------------
// Properties

const TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const TOKEN68_CHARS = '-._~+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

const token = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 10 });
const token68 = fc
  .tuple(fc.string({ unit: fc.constantFrom(...TOKEN68_CHARS), minLength: 1, maxLength: 16 }), fc.nat(2))
  .map(([body, pad]) => body + '='.repeat(pad));
/** Values that need quoting and escaping, printable ASCII, and any printable Unicode. */
const value = fc.oneof(
  fc.string({ unit: fc.constantFrom('"', '\\', ',', '=', ' ', ';', 'a', 'Z'), maxLength: 12 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  token,
);
const whitespace = fc.constantFrom('', ' ', '\t', '  ');
/** Re-case a token at random; names and schemes must come back lowercased. */
const recased = (text: string): fc.Arbitrary<string> =>
  fc
    .array(fc.boolean(), { minLength: text.length, maxLength: text.length })
    .map((upper) =>
      Array.from(text, (c, i) => (upper[i] === true ? c.toUpperCase() : c.toLowerCase())).join(''),
    );

interface Generated {
  expected: Challenge;
  serialized: string;
}

const param = fc.tuple(token, value, fc.boolean(), whitespace, whitespace).chain(([name, v, raw, ws1, ws2]) =>
  recased(name).map((spelled) => {
    const isToken = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(v);
    const text = raw && isToken ? v : `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;
    return { name: name.toLowerCase(), value: v, text: `${spelled}${ws1}=${ws2}${text}` };
  }),
);

const challenge: fc.Arbitrary<Generated> = fc
  .tuple(
    token.chain(recased),
    fc.oneof(
      token68.map((t) => ({ token68: t })),
      fc.uniqueArray(param, { selector: (p) => p.name, maxLength: 5 }).map((params) => ({ params })),
    ),
    whitespace,
  )
  .map(([scheme, body, ws]) => {
    const expected: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    let serialized = scheme;
    if ('token68' in body) {
      expected.token68 = body.token68;
      serialized += ` ${body.token68}`;
    } else if (body.params.length > 0) {
      // fromEntries, not assignment: a generated `__proto__` must be an own key, as parsed.
      expected.params = Object.fromEntries(body.params.map((p) => [p.name, p.value]));
      serialized += ` ${body.params.map((p) => p.text).join(`${ws},${ws}`)}`;
    }
    return { expected, serialized };
  });

const challenges = fc.array(challenge, { minLength: 1, maxLength: 6 });
const separator = fc.constantFrom(', ', ',', ' , ', ',\t', ', , ');

describe('parseWwwAuthenticate: properties', () => {
  it('round trip: serialized challenges parse back to what was generated', () => {
    fc.assert(
      fc.property(challenges, separator, (list, sep) => {
        const header = list.map((c) => c.serialized).join(sep);
        assert.deepEqual(
          parseWwwAuthenticate(header),
          list.map((c) => c.expected),
        );
      }),
      { numRuns: 500 },
    );
  });

  it('splitting one header into several values gives the same challenges', () => {
    fc.assert(
      fc.property(challenges, fc.array(fc.nat(), { maxLength: 5 }), (list, cuts) => {
        const serialized = list.map((c) => c.serialized);
        const points = [...new Set(cuts.map((c) => c % serialized.length))].sort((a, b) => a - b);
        const values: string[] = [];
        let from = 0;
        for (const point of [...points.filter((p) => p > 0), serialized.length]) {
          values.push(serialized.slice(from, point).join(', '));
          from = point;
        }
        assert.deepEqual(parseWwwAuthenticate(values), parseWwwAuthenticate(serialized.join(', ')));
        assert.deepEqual(
          parseWwwAuthenticate(values),
          list.map((c) => c.expected),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on arbitrary input, and what it returns is well-formed', () => {
    const structural = fc.string({
      unit: fc.constantFrom('"', '\\', ',', '=', ' ', '\t', 'a', 'B', '/', '+', '\u0000', '\u00e9'),
      maxLength: 60,
    });
    const input = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      structural,
      fc.array(fc.oneof(structural, fc.string()), { maxLength: 4 }),
    );
    fc.assert(
      fc.property(input, (header) => {
        const parsed = parseWwwAuthenticate(header);
        bearerChallenge(header);
        for (const c of parsed) {
          assert.match(c.scheme, /^[!#$%&'*+\-.^_`|~0-9a-z]+$/);
          for (const name of Object.keys(c.params)) assert.match(name, /^[!#$%&'*+\-.^_`|~0-9a-z]+$/);
          for (const v of Object.values(c.params)) assert.equal(typeof v, 'string');
        }
      }),
      { numRuns: 2000 },
    );
  });
});
