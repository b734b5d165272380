/**
 * `WWW-Authenticate` (RFC 9110 §11.6.1) as a client meets it in the wild: several challenges
 * in one header value and across several values, quoted strings with escapes and commas,
 * token68, scheme and parameter names in any case. The header comes from a server we do not
 * trust yet, so parsing never throws and never backtracks: it returns every challenge it
 * could make sense of and skips the rest, one list element at a time.
 *
 * Leniencies, each harmless for well-formed input: a missing comma between two auth-params is
 * tolerated, an unterminated quoted string runs to the end of its header value, and of a
 * parameter repeated within one challenge (forbidden by RFC 9110) the first one wins, so a
 * later duplicate cannot override `resource_metadata`.
 */
import { networkText } from '../network-text.js';
import type { BearerChallenge, Challenge } from './types.js';

/** Header lookup as a fetch Headers object (or the MCP wires' own answers) offers it. */
interface HeaderLookup {
  get(name: string): string | null;
}

/** Anything that carries the header: a Response, a Headers object, or its raw value(s). */
export type WwwAuthenticateSource =
  { readonly headers: HeaderLookup } | HeaderLookup | string | readonly string[] | null | undefined;

/** Longer header values are parsed up to this many characters. */
const MAX_VALUE_LENGTH = 16 * 1024;
const MAX_CHALLENGES = 32;
const MAX_PARAMS = 64;

/** Every challenge in the source, in order. Never throws. */
export function parseWwwAuthenticate(source: WwwAuthenticateSource): Challenge[] {
  const challenges: Challenge[] = [];
  for (const value of headerValues(source)) {
    parseValue(value.length > MAX_VALUE_LENGTH ? value.slice(0, MAX_VALUE_LENGTH) : value, challenges);
  }
  return challenges;
}

/**
 * The first `Bearer` challenge (RFC 6750 §3, RFC 9728 §5.1), else the first `DPoP` one (RFC
 * 9449 §7.1: a DPoP-only server challenges with the same parameters), or undefined when there
 * is neither. `scope` is split on whitespace and omitted when it names no scope.
 */
export function bearerChallenge(source: WwwAuthenticateSource): BearerChallenge | undefined {
  const challenges = parseWwwAuthenticate(source);
  const challenge =
    challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'dpop');
  if (challenge === undefined) return undefined;
  const { params } = challenge;
  const result: BearerChallenge = {};
  if (challenges.some((c) => c.scheme === 'dpop')) result.dpop = true;
  const resourceMetadata = param(params, 'resource_metadata');
  if (resourceMetadata !== undefined) result.resourceMetadata = resourceMetadata;
  const scope = param(params, 'scope')
    ?.split(/[ \t]+/)
    .filter((s) => s.length > 0);
  if (scope !== undefined && scope.length > 0) result.scope = scope;
  const error = param(params, 'error');
  if (error !== undefined) result.error = error;
  const errorDescription = param(params, 'error_description');
  if (errorDescription !== undefined) result.errorDescription = networkText(errorDescription);
  return result;
}

/** A `DPoP error="use_dpop_nonce"` challenge (RFC 9449 §9): send again with the new nonce. */
export function isDPoPNonceChallenge(source: WwwAuthenticateSource): boolean {
  return parseWwwAuthenticate(source).some(
    (c) => c.scheme === 'dpop' && param(c.params, 'error') === 'use_dpop_nonce',
  );
}

function param(params: Record<string, string>, name: string): string | undefined {
  return Object.hasOwn(params, name) ? params[name] : undefined;
}

function headerValues(source: WwwAuthenticateSource): readonly string[] {
  if (source === null || source === undefined) return [];
  if (typeof source === 'string') return [source];
  if (isStringArray(source)) return source.filter((v) => typeof v === 'string');
  // Duck-typed so that Headers from another fetch implementation work too.
  const headers = 'headers' in source ? source.headers : source;
  try {
    const value = headers.get('www-authenticate');
    return value === null ? [] : [value];
  } catch {
    return [];
  }
}

function isStringArray(source: object): source is readonly string[] {
  return Array.isArray(source);
}

// ---------------------------------------------------------------------------------------
// The parser: an index walks the value; every helper returns the index after what it read.

const SP = 0x20;
const HTAB = 0x09;
const COMMA = 0x2c;
const EQUALS = 0x3d;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

/** RFC 9110 tchar. */
function isTchar(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) ||
    (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x61 && code <= 0x7a) ||
    "!#$%&'*+-.^_`|~".includes(String.fromCharCode(code))
  );
}

/** RFC 9110 token68 characters, without the trailing `=` padding. */
function isToken68Char(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) ||
    (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x61 && code <= 0x7a) ||
    '-._~+/'.includes(String.fromCharCode(code))
  );
}

function skipWhitespace(s: string, i: number): number {
  while (i < s.length && (s.charCodeAt(i) === SP || s.charCodeAt(i) === HTAB)) i++;
  return i;
}

/** Skip whitespace and empty list elements (RFC 9110 §5.6.1 allows `a, , b`). */
function skipSeparators(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== SP && c !== HTAB && c !== COMMA) break;
    i++;
  }
  return i;
}

function tokenEnd(s: string, i: number): number {
  while (i < s.length && isTchar(s.charCodeAt(i))) i++;
  return i;
}

function atListEnd(s: string, i: number): boolean {
  return i >= s.length || s.charCodeAt(i) === COMMA;
}

/** Skip one malformed list element: up to the next comma outside a quoted string. */
function skipElement(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c === COMMA) return i;
    if (c === DQUOTE) i = readQuoted(s, i).end;
    else i++;
  }
  return i;
}

/** A quoted-string starting at the DQUOTE at `i`; unterminated ones run to the end. */
function readQuoted(s: string, i: number): { value: string; end: number } {
  let value = '';
  let j = i + 1;
  while (j < s.length) {
    const c = s.charCodeAt(j);
    if (c === DQUOTE) return { value, end: j + 1 };
    if (c === BACKSLASH && j + 1 < s.length) {
      value += s[j + 1];
      j += 2;
    } else {
      value += s[j];
      j++;
    }
  }
  return { value, end: j };
}

/** `token BWS "=" BWS ( token / quoted-string )` at `i`, or undefined if it is not one. */
function readParam(s: string, i: number): { name: string; value: string; end: number } | undefined {
  const nameEnd = tokenEnd(s, i);
  if (nameEnd === i) return undefined;
  let j = skipWhitespace(s, nameEnd);
  if (s.charCodeAt(j) !== EQUALS) return undefined;
  j = skipWhitespace(s, j + 1);
  const name = s.slice(i, nameEnd).toLowerCase();
  if (s.charCodeAt(j) === DQUOTE) {
    const quoted = readQuoted(s, j);
    return { name, value: quoted.value, end: quoted.end };
  }
  // `=` right after `=` is token68 padding (`abc==`), not a parameter value.
  if (s.charCodeAt(j) === EQUALS) return undefined;
  const valueEnd = tokenEnd(s, j);
  if (valueEnd === j) return undefined;
  return { name, value: s.slice(j, valueEnd), end: valueEnd };
}

/** token68 at `i` when it is all that precedes the end of this list element. */
function readToken68(s: string, i: number): { value: string; end: number } | undefined {
  let j = i;
  while (j < s.length && isToken68Char(s.charCodeAt(j))) j++;
  if (j === i) return undefined;
  while (j < s.length && s.charCodeAt(j) === EQUALS) j++;
  const end = skipWhitespace(s, j);
  return atListEnd(s, end) ? { value: s.slice(i, j), end } : undefined;
}

function addParam(challenge: Challenge, name: string, value: string): void {
  const { params } = challenge;
  if (Object.hasOwn(params, name) || Object.keys(params).length >= MAX_PARAMS) return;
  // defineProperty, not assignment: a parameter named `__proto__` must stay a plain key.
  Object.defineProperty(params, name, { value, enumerable: true, writable: true, configurable: true });
}

function parseValue(s: string, out: Challenge[]): void {
  /** The challenge that later auth-params belong to (none after a token68 challenge). */
  let current: Challenge | undefined;
  let i = 0;
  while (out.length < MAX_CHALLENGES) {
    i = skipSeparators(s, i);
    if (i >= s.length) return;
    if (current !== undefined) {
      const p = readParam(s, i);
      if (p !== undefined) {
        addParam(current, p.name, p.value);
        i = p.end;
        continue;
      }
    }
    const schemeEnd = tokenEnd(s, i);
    const next = s.charCodeAt(schemeEnd);
    if (schemeEnd === i || !(schemeEnd >= s.length || next === SP || next === HTAB || next === COMMA)) {
      i = skipElement(s, i);
      continue;
    }
    const challenge: Challenge = { scheme: s.slice(i, schemeEnd).toLowerCase(), params: {} };
    out.push(challenge);
    i = skipWhitespace(s, schemeEnd);
    const token68 = readToken68(s, i);
    if (token68 !== undefined) {
      challenge.token68 = token68.value;
      current = undefined;
      i = token68.end;
    } else {
      current = challenge;
    }
  }
}
