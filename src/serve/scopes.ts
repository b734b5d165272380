/**
 * App-key scopes (docs/serve.md, "One gateway, several applications"). A key created with a
 * subject prefix speaks only for the subjects that start with it, so two applications behind
 * one gateway cannot read, use or revoke each other's users' connections, nor see their
 * events. A key without one speaks for every subject, as keys always did.
 *
 * The router (routes.ts) checks the subject of every `/v1/subjects/{subject}/…` route here,
 * before any handler runs, so a route cannot forget; the event stream filters by the same
 * prefix (event-stream.ts).
 */
import { ErrorCode, LatchkeyError } from '../errors.js';
import type { AppKeyRecord } from '../store/serve-contract.js';
import { HttpError } from './http.js';
import { isSubjectPart } from './subject.js';

/** Longest subject prefix a key may have. */
export const SUBJECT_PREFIX_MAX = 64;

/**
 * A prefix is held to the characters a subject may have (subject.ts): a prefix with any
 * other character could match no subject at all, and a key that silently answers 403 to
 * everything is worse than an error when it is made.
 */

/** The prefix as given, or a typed error saying what a prefix may be. */
export function checkedSubjectPrefix(prefix: string): string {
  if (!isSubjectPart(prefix, SUBJECT_PREFIX_MAX)) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      `a subject prefix is 1-${SUBJECT_PREFIX_MAX} characters of letters, digits and . _ : @ + - ` +
        '(the characters a subject may have), with no spaces or control characters.',
      {
        retryable: false,
        next: { kind: 'configure', detail: 'choose a prefix such as "owui:" for the application' },
      },
    );
  }
  return prefix;
}

/** Whether `key` may name `subject`: a plain string compare with its prefix, if it has one. */
export function inScope(prefix: string | undefined, subject: string): boolean {
  return prefix === undefined || subject.startsWith(prefix);
}

/** The key's scope in words, for `keys list` and the 403 message. */
export function scopeText(key: Pick<AppKeyRecord, 'subjectPrefix'>): string {
  return key.subjectPrefix === undefined
    ? 'all subjects'
    : `subjects starting with ${JSON.stringify(key.subjectPrefix)}`;
}

/**
 * Refuse a subject outside the key's scope. The answer is the same whether or not the
 * subject has connections, and names only the key's own scope, never the other subject's data.
 */
export function requireInScope(key: Pick<AppKeyRecord, 'subjectPrefix'>, subject: string): void {
  if (inScope(key.subjectPrefix, subject)) return;
  throw new HttpError(403, {
    error: 'forbidden',
    message: `this app key may only name ${scopeText(key)}.`,
  });
}

/** Which path parameter of a route template is the subject, or undefined when it has none. */
export function subjectParamIndex(template: string): number | undefined {
  const names = [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
  const index = names.indexOf('subject');
  return index < 0 ? undefined : index;
}

type Json = Record<string, unknown>;

const FORBIDDEN: Json = {
  description: "forbidden: the app key's subject prefix does not cover this subject.",
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
};

/**
 * The OpenAPI paths with the 403 added to every app-key operation that names a subject (in
 * its path, or `GET /v1/events` with `?subject=`): one rule, as the router applies it.
 */
export function withScopeErrors(paths: Json): Json {
  const out: Json = {};
  for (const [path, item] of Object.entries(paths)) {
    const names = path.includes('{subject}') || path === '/v1/events';
    out[path] = names ? withForbidden(item as Json) : item;
  }
  return out;
}

function withForbidden(item: Json): Json {
  const out: Json = { ...item };
  for (const [method, op] of Object.entries(item)) {
    const operation = op as Json;
    if (method === 'parameters' || operation['security'] === undefined) continue;
    const responses = (operation['responses'] ?? {}) as Json;
    out[method] = { ...operation, responses: { ...responses, '403': FORBIDDEN } };
  }
  return out;
}
