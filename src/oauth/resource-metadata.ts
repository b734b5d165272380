/**
 * RFC 9728 protected resource metadata (PRM): where an MCP server says which authorization
 * servers issue its tokens (AUTH-03..AUTH-07).
 *
 * Where we look, in order:
 *   1. the `resource_metadata` URL of the server's 401 challenge (AUTH-05), when usable;
 *   2. `/.well-known/oauth-protected-resource/<path>`, path-inserted (AUTH-06, RFC 9728 §3.1);
 *   3. `/.well-known/oauth-protected-resource` at the root (AUTH-06).
 * A location with no document (4xx, a 200 that is not a JSON object, a cross-origin redirect)
 * passes to the next one. The first document found decides: if it is invalid, discovery stops
 * with a permanent error rather than falling through to a less specific document, and a
 * network error, timeout or 5xx stops it with a retryable one (the more specific document may
 * name another AS than the root one).
 *
 * Which `resource` values are accepted: see `judgeResource`, the one rule `login`, the proxy
 * and `doctor` share, wherever the document was found.
 */
import { canonicalServer } from '../credential/key.js';
import { loginAction, type NextAction, operator } from '../next-action.js';
import {
  discoveryError,
  fetchMetadataDocument,
  isUsableTarget,
  type MetadataRequestOptions,
  parseUrl,
  quote,
  sameIdentifier,
  unreachable,
} from './metadata-http.js';
import { isIssuerIdentifier } from './server-metadata.js';

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/** How a PRM location was derived, which decides the `resource` values it may carry. */
export type ResourceMetadataPosition = 'challenge' | 'path' | 'root';

export interface ResourceMetadataLocation {
  url: string;
  position: ResourceMetadataPosition;
}

/** A validated PRM document. */
export interface ProtectedResourceMetadata {
  /** `resource`, verbatim: what to send as the RFC 8707 resource. */
  resource: string;
  /** How `resource` relates to the server URL (see judgeResource). */
  resourceMatch: 'identical' | 'prefix';
  /** Usable issuer identifiers from `authorization_servers`, in document order. */
  authorizationServers: string[];
  /** `scopes_supported` (string entries only), if present. */
  scopesSupported?: string[];
  /** The document as served, for the cache. */
  document: Record<string, unknown>;
}

export type ResourceMetadataResult =
  | { kind: 'found'; metadata: ProtectedResourceMetadata; url: string }
  /** No location had a document: the server predates RFC 9728 (or does not publish PRM). */
  | { kind: 'none'; tried: string[] };

/** The locations to try, in order, without duplicates. An unusable challenge URL is skipped. */
export function resourceMetadataLocations(
  server: string,
  challengeUrl?: string | undefined,
): ResourceMetadataLocation[] {
  const resource = new URL(server);
  const locations: ResourceMetadataLocation[] = [];
  const challenge = challengeUrl === undefined ? undefined : parseUrl(challengeUrl);
  if (challenge !== undefined && isUsableTarget(challenge, server)) {
    challenge.hash = '';
    locations.push({ url: challenge.href, position: 'challenge' });
  }
  const pathInserted = new URL(resource.origin);
  pathInserted.pathname = WELL_KNOWN + (resource.pathname === '/' ? '' : resource.pathname);
  pathInserted.search = resource.search;
  locations.push({ url: pathInserted.href, position: 'path' });
  locations.push({ url: rootLocation(server), position: 'root' });
  return locations.filter((l, i) => locations.findIndex((m) => m.url === l.url) === i);
}

/** The root well-known PRM URL of the server's origin. */
export function rootLocation(server: string): string {
  return new URL(WELL_KNOWN, new URL(server).origin).href;
}

/** Fetch PRM for `server` (canonical), trying each location in turn. */
export async function fetchResourceMetadata(
  server: string,
  options: MetadataRequestOptions & { resourceMetadataUrl?: string | undefined },
): Promise<ResourceMetadataResult> {
  const tried: string[] = [];
  for (const location of resourceMetadataLocations(server, options.resourceMetadataUrl)) {
    const result = await fetchMetadataDocument(new URL(location.url), options);
    if (result.kind === 'transient') throw unreachable(server, 'protected resource metadata', result);
    tried.push(location.url);
    if (result.kind === 'absent') continue;
    const metadata = validateResourceMetadata(result.document, server, location);
    return { kind: 'found', metadata, url: location.url };
  }
  return { kind: 'none', tried };
}

/**
 * Validate a PRM document fetched from `location` for `server` (canonical). Throws a
 * permanent DISCOVERY_FAILED error when it must not be used.
 */
export function validateResourceMetadata(
  document: Record<string, unknown>,
  server: string,
  location: ResourceMetadataLocation,
): ProtectedResourceMetadata {
  const resource = document['resource'];
  const resourceMatch = judgeResource(resource, server);
  if (typeof resource !== 'string' || resourceMatch === 'mismatch') {
    throw discoveryError(
      server,
      `the protected resource metadata at ${location.url} is for resource ${quote(resource)}, which neither is this server's URL nor contains it (same origin, a parent path), so it is not used.`,
      { next: resourceMismatchNext(server, resource) },
    );
  }
  const listed = document['authorization_servers'];
  const authorizationServers = Array.isArray(listed)
    ? listed.filter((s): s is string => isIssuerIdentifier(s) && isUsableTarget(new URL(s), server))
    : [];
  if (authorizationServers.length === 0) {
    throw discoveryError(
      server,
      `the protected resource metadata at ${location.url} names no usable authorization server (authorization_servers: ${quote(listed)}).`,
      { next: operator('ask the server operator to list its https authorization server in its metadata') },
    );
  }
  const metadata: ProtectedResourceMetadata = { resource, resourceMatch, authorizationServers, document };
  const scopes = document['scopes_supported'];
  if (Array.isArray(scopes)) metadata.scopesSupported = scopes.filter((s) => typeof s === 'string');
  return metadata;
}

/**
 * Whether a PRM `resource` may stand for the MCP server at `server` (canonical). The one rule
 * every caller uses, wherever the document was found (challenge URL, path-inserted, root):
 *
 * - `identical`: the server's URL, exactly (an origin may be written with or without `/`);
 * - `prefix`: a parent of it on the same origin, cut at a path segment: `https://h` and
 *   `https://h/` contain `https://h/mcp`, `https://h/api` contains `https://h/api/mcp`, but
 *   `https://h/m` does not contain `https://h/mcp`. Compared as strings, so scheme, host and
 *   port must be spelled exactly as in the canonical server URL; no query or fragment;
 * - `mismatch`: anything else, another origin above all.
 *
 * RFC 9728 §3.3 asks for identical values. The MCP TypeScript SDK (the reference client)
 * accepts a same-origin parent, and servers built against it publish one: better-auth names
 * its origin. A parent on the same origin cannot send a token to another host, and the
 * server's own origin vouches for it; the `resource` then sent (RFC 8707) is the one the
 * metadata names, so the token's audience is what the server expects.
 */
export function judgeResource(resource: unknown, server: string): 'identical' | 'prefix' | 'mismatch' {
  if (typeof resource !== 'string') return 'mismatch';
  if (sameIdentifier(resource, server)) return 'identical';
  const url = parseUrl(resource);
  if (url === undefined || resource.includes('?') || resource.includes('#')) return 'mismatch';
  if (url.origin !== new URL(server).origin) return 'mismatch';
  const parent = resource.endsWith('/') ? resource : `${resource}/`;
  return server.startsWith(parent) ? 'prefix' : 'mismatch';
}

/** Words for an accepted `resource`, shared by `doctor` and the login's notes. */
export function describeResource(metadata: ProtectedResourceMetadata, server: string): string {
  return metadata.resourceMatch === 'identical'
    ? `resource ${metadata.resource}`
    : `resource ${metadata.resource}, a parent of ${server} on the same origin (accepted, as the MCP SDK does; sent as the RFC 8707 resource)`;
}

function resourceMismatchNext(server: string, resource: unknown): NextAction {
  if (typeof resource === 'string') {
    const url = parseUrl(resource);
    if (url !== undefined && url.origin === new URL(server).origin) {
      return loginAction(canonicalServer(resource), {
        detail: `if ${quote(resource)} is the server's address`,
      });
    }
  }
  return {
    kind: 'configure',
    detail: "check the server URL; the server's metadata describes a different resource",
  };
}
