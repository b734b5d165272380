// Shared pieces of the fuzz tests: the case count, what a hostile peer sends, and the one
// property every parser of network input must keep (it fails only with a LatchkeyError).
import assert from 'node:assert/strict';

import fc from 'fast-check';

import { isLatchkeyError } from '../../src/errors.js';

/**
 * Cases per property: LATCHKEY_FUZZ_RUNS, default 2000 (what `npm test` and CI run).
 * `npm run fuzz` sets 100 000, the nightly size.
 */
export function fuzzRuns(): number {
  const text = process.env['LATCHKEY_FUZZ_RUNS'];
  const runs = text === undefined ? NaN : Number(text);
  return Number.isSafeInteger(runs) && runs > 0 ? runs : 2000;
}

/** fast-check parameters for every property: the run count, and a seed to replay a failure. */
export function fuzzParameters<T>(): fc.Parameters<T> {
  const seed = process.env['LATCHKEY_FUZZ_SEED'];
  return {
    numRuns: fuzzRuns(),
    ...(seed === undefined ? {} : { seed: Number(seed) }),
  };
}

/** A test timeout that grows with the run count (the default 300 s fits 2000 cases easily). */
export function fuzzTimeoutMs(perCaseMs: number): number {
  return Math.max(300_000, fuzzRuns() * perCaseMs);
}

/** The property: `run` either returns or fails with a typed LatchkeyError naming `server`. */
export async function failsOnlyTyped(run: () => unknown, server?: string): Promise<void> {
  try {
    await run();
  } catch (error) {
    assert.ok(
      isLatchkeyError(error),
      `not a LatchkeyError: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
    );
    if (server !== undefined) assert.equal(error.server, server, 'the error names the server');
  }
}

const CONTROL = fc.constantFrom(
  '\u0000',
  '\u0007',
  '\b',
  '\t',
  '\n',
  '\r',
  '\u001b[2J',
  '\u001b]52;c;SGVsbG8=\u0007',
  '\u007f',
  '\u0085',
  '\u2028',
  '\u2029',
  '\ufeff',
  '\ud800', // a lone surrogate
  '\udfff',
  '\u{1f600}',
);

/** Keys that reach for the prototype chain when a parser assigns blindly. */
export const PROTO_KEY = fc.constantFrom(
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
);

/** Strings mixing ordinary text with control characters, unicode and prototype names. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.oneof(fc.string({ minLength: 1, maxLength: 1 }), CONTROL) }),
  PROTO_KEY,
  fc.constantFrom('', ' ', 'null', 'undefined', 'NaN', '[object Object]', 'Bearer', '"', '\\'),
);

/**
 * Numbers as JSON text: beyond double range (parse to ±Infinity), beyond 2^53, tiny,
 * negative zero, and ordinary ones. Spliced into documents verbatim.
 */
export const RAW_NUMBER = fc.oneof(
  fc.constantFrom(
    '1e400',
    '-1e400',
    '1e308',
    '-1e308',
    '9007199254740993',
    '123456789012345678901234567890',
    '1e-400',
    '-0',
    '0',
    '-1',
    '0.5',
    '8.64e15',
    '8.64e12',
  ),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc.integer().map(String),
);

const RAW = '\u0000RAW:';
const raw = (token: string): string => `${RAW}${token}\u0000`;

/** Any JSON value, with hostile strings, keys and numbers. */
export const hostileJson: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    RAW_NUMBER.map(raw),
    hostileString,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.oneof(hostileString, PROTO_KEY), tie('value'), { maxKeys: 5 }),
  ),
})).value;

/**
 * JSON text of `value`, with the raw number tokens put in verbatim (JSON.stringify cannot write
 * 1e400 or 9007199254740993 as they were sent).
 */
export function toJsonText(value: unknown): string {
  return JSON.stringify(value).replace(/"\\u0000RAW:([^"\\]*)\\u0000"/g, '$1');
}

/**
 * A JSON object built from a valid `template` with fields dropped, replaced by hostile values
 * or retyped, plus extra (prototype) keys: "structured but wrong", which reaches far deeper
 * into a parser than random bytes do.
 */
export function mutatedObject(template: Record<string, unknown>): fc.Arbitrary<Record<string, unknown>> {
  const fields = Object.keys(template);
  return fc
    .record({
      drop: fc.subarray(fields),
      // Numbers get their own weight: a wrong type is caught by most parsers, an absurd
      // magnitude (1e308 seconds, 2^53 + 1) slips through type checks.
      replace: fc.dictionary(fc.constantFrom(...fields), fc.oneof(hostileJson, RAW_NUMBER.map(raw)), {
        maxKeys: fields.length,
      }),
      extra: fc.dictionary(fc.oneof(PROTO_KEY, hostileString), hostileJson, { maxKeys: 3 }),
    })
    .map(({ drop, replace, extra }) => {
      const out: Record<string, unknown> = {};
      const put = (key: string, value: unknown): void => {
        Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
      };
      for (const [key, value] of Object.entries(template)) if (!drop.includes(key)) put(key, value);
      for (const [key, value] of Object.entries(replace)) put(key, value);
      for (const [key, value] of Object.entries(extra)) put(key, value);
      return out;
    });
}

/** A response body: a mutated template as JSON text, any JSON, or bytes that are not JSON at all. */
export function hostileBody(template: Record<string, unknown>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: mutatedObject(template).map(toJsonText) },
    { weight: 2, arbitrary: hostileJson.map(toJsonText) },
    { weight: 1, arbitrary: hostileString },
    {
      weight: 1,
      arbitrary: mutatedObject(template).map((o) => toJsonText(o).slice(0, -1)), // cut short
    },
  );
}

/** An HTTP status a hostile server might answer with, biased to the interesting ones. */
export const hostileStatus = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(200, 201, 400, 401) },
  { weight: 2, arbitrary: fc.constantFrom(204, 301, 302, 307, 403, 404, 408, 429, 500, 503) },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 599 }) },
);

/** Response headers: a content type (right, wrong or missing) and maybe odd extras. */
export const hostileHeaders: fc.Arbitrary<Record<string, string>> = fc.record(
  {
    'content-type': fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'text/html',
      'text/event-stream',
      'application/jwt',
      '',
    ),
    'www-authenticate': fc.constantFrom(
      'Bearer error="invalid_token"',
      'Bearer realm="x", error="invalid_client", error_description="\u001b[2J"',
      'Basic',
      'Bearer ,,,=="',
    ),
    'retry-after': fc.oneof(
      fc.constantFrom('1', '99999999999999999999', 'Wed, 21 Oct 2015 07:28:00 GMT'),
      fc.string(),
    ),
    location: fc.constantFrom('/elsewhere', 'https://evil.example/x', 'javascript:alert(1)', '::::'),
  },
  { requiredKeys: ['content-type'] },
);

/** A Response built by hand: Headers refuses some header values, which then are left out. */
export function response(status: number, body: string, headers: Record<string, string>): Response {
  const safe = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    try {
      safe.set(name, value);
    } catch {
      // not a legal header value; a real server could not send it either
    }
  }
  const noBody = status === 204 || status === 205 || status === 304;
  return new Response(noBody ? null : body, { status, headers: safe });
}
