import { ErrorCode, LatchkeyError } from '../errors.js';
import type { NextAction } from '../next-action.js';

/**
 * A credential is the token set for one (server, authorization-server issuer, subject).
 * `server` is the canonical resource URI of the MCP server (RFC 8707 / RFC 9728).
 */
export interface CredentialKey {
  readonly server: string;
  readonly issuer: string;
  readonly subject: string;
}

/** The subject used on a desktop, where the local OS user is the only user. */
export const LOCAL_SUBJECT = 'local';

const FULL_URL: NextAction = { kind: 'configure', detail: 'pass the full https:// URL of the MCP server' };

/**
 * Canonical resource URI: lowercase scheme and host, no fragment, default port dropped.
 * The path is kept as is (including a trailing slash) because RFC 8707 resources are
 * compared as strings and servers differ on whether `/mcp` and `/mcp/` are the same.
 */
export function canonicalServer(input: string | URL): string {
  let url: URL;
  try {
    url = new URL(String(input));
  } catch (cause) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      `not a valid server URL: ${JSON.stringify(String(input))}`,
      {
        retryable: false,
        next: FULL_URL,
        cause,
      },
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      `server URL must be http(s): ${JSON.stringify(url.href)}`,
      {
        retryable: false,
        next: FULL_URL,
      },
    );
  }
  url.hash = '';
  url.username = '';
  url.password = '';
  // WHATWG URL already lowercases scheme and host and drops default ports.
  let text = url.href;
  // A bare origin serializes with a trailing "/"; RFC 9728 examples use the origin without it.
  // A bare origin is written without the slash unless the caller wrote one (the fragment,
  // already dropped, must not decide that; and an empty query is no query).
  if (url.search === '' && text.endsWith('?')) text = text.slice(0, -1);
  const written = String(input).trim().replace(/#.*$/s, '').replace(/\?$/, '');
  if (url.pathname === '/' && url.search === '' && !written.endsWith('/')) text = text.slice(0, -1);
  return text;
}

/** A string form of the key, used as map key, single-flight key and AEAD associated data. */
export function keyId(key: CredentialKey): string {
  return `${key.server}\u0000${key.issuer}\u0000${key.subject}`;
}

export function sameKey(a: CredentialKey, b: CredentialKey): boolean {
  return a.server === b.server && a.issuer === b.issuer && a.subject === b.subject;
}
