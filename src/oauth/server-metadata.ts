/**
 * Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0), fetched the way the
 * MCP spec orders it (AUTH-11..AUTH-14) and validated before anything uses it.
 *
 * Locations, in order, for an issuer with a path (`https://as.example.com/tenant1`):
 *   1. https://as.example.com/.well-known/oauth-authorization-server/tenant1
 *   2. https://as.example.com/.well-known/openid-configuration/tenant1
 *   3. https://as.example.com/tenant1/.well-known/openid-configuration
 * and without one (`https://as.example.com`):
 *   1. https://as.example.com/.well-known/oauth-authorization-server
 *   2. https://as.example.com/.well-known/openid-configuration
 * oauth4webapi's `discoveryRequest` knows forms 1 (`oauth2`) and 3 (`oidc`) but not 2, so the
 * list is built here.
 *
 * All locations describe the same issuer, so unlike PRM a failure at one does not stop the
 * search: the first document that validates wins. HTTP errors and rejected documents move on
 * to the next location; only a network error or timeout (the host itself is unreachable)
 * stops early. When nothing validates, a rejected document (wrong issuer, plain-http
 * endpoints, malformed) is reported first, as a permanent error; otherwise a 5xx or timeout is
 * reported as retryable; otherwise "no metadata" is permanent.
 *
 * Validation:
 * - `issuer` must be identical to the issuer the URLs were built from (AUTH-14, RFC 8414
 *   §3.3); `sameIdentifier` tolerates only the `https://host` vs `https://host/` spelling.
 *   oauth4webapi's `processDiscoveryResponse` compares after URL normalization, which is
 *   weaker, so the comparison is done here.
 * - Every endpoint (`*_endpoint`, `jwks_uri`, `mtls_endpoint_aliases`) must be https. Plain
 *   http is accepted only when both the issuer and the endpoint are loopback hosts.
 */
import type * as oauth from 'oauth4webapi';

import type { LatchkeyError } from '../errors.js';
import {
  discoveryError,
  fetchMetadataDocument,
  isAllowedUrl,
  type MetadataFetchResult,
  type MetadataRequestOptions,
  parseUrl,
  quote,
  sameIdentifier,
  unreachable,
} from './metadata-http.js';
import { configure, operator } from '../next-action.js';
import { isLoopbackUrl } from './loopback.js';

const OAUTH_WELL_KNOWN = '/.well-known/oauth-authorization-server';
const OIDC_WELL_KNOWN = '/.well-known/openid-configuration';

export interface AuthorizationServerMetadataResult {
  metadata: oauth.AuthorizationServer;
  /** The location the document was served from. */
  url: string;
}

/**
 * An RFC 8414 §2 issuer identifier latchkey will talk to: an absolute https URL (http only for
 * loopback hosts) without query, fragment or userinfo.
 */
export function isIssuerIdentifier(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const url = parseUrl(value);
  return (
    url !== undefined &&
    isAllowedUrl(url) &&
    url.search === '' &&
    url.hash === '' &&
    !value.includes('?') &&
    !value.includes('#') &&
    url.username === '' &&
    url.password === ''
  );
}

/** The metadata URLs of `issuer` in AUTH-12 / AUTH-13 order. */
export function authorizationServerMetadataUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/$/, '');
  if (path === '') return [url.origin + OAUTH_WELL_KNOWN, url.origin + OIDC_WELL_KNOWN];
  return [
    url.origin + OAUTH_WELL_KNOWN + path,
    url.origin + OIDC_WELL_KNOWN + path,
    url.origin + path + OIDC_WELL_KNOWN,
  ];
}

export type AuthorizationServerMetadataSearch =
  | ({ kind: 'found' } & AuthorizationServerMetadataResult)
  /** No location answered with a document at all. */
  | { kind: 'none'; tried: string[] };

/**
 * Fetch and validate the metadata of `issuer` for the MCP server `options.server` (named by
 * errors). Throws DISCOVERY_FAILED (retryable only for network errors, timeouts and 5xx),
 * including when there is no metadata at all.
 */
export async function fetchAuthorizationServerMetadata(
  issuer: string,
  options: MetadataRequestOptions,
): Promise<AuthorizationServerMetadataResult> {
  const search = await findAuthorizationServerMetadata(issuer, options);
  if (search.kind === 'found') return { metadata: search.metadata, url: search.url };
  throw noMetadataError(options.server, issuer, search.tried);
}

/** The permanent error for an issuer without metadata at any of its locations. */
export function noMetadataError(server: string, issuer: string, tried: readonly string[]): LatchkeyError {
  return discoveryError(
    server,
    `the authorization server ${quote(issuer)} publishes no metadata (tried ${tried.join(', ')}).`,
    { next: configure('check that the authorization server supports RFC 8414 or OpenID Connect Discovery') },
  );
}

/** As fetchAuthorizationServerMetadata, but "no document anywhere" is a result, not an error. */
export async function findAuthorizationServerMetadata(
  issuer: string,
  options: MetadataRequestOptions,
): Promise<AuthorizationServerMetadataSearch> {
  const { server } = options;
  if (!isIssuerIdentifier(issuer)) {
    throw discoveryError(server, `${quote(issuer)} is not a usable authorization server issuer.`, {
      next: configure('the issuer must be an https URL without query or fragment'),
    });
  }
  const urls = authorizationServerMetadataUrls(issuer);
  const found = await firstUsableMetadata(urls, issuer, options, (document, url) =>
    validateAuthorizationServerMetadata(document, issuer, server, url),
  );
  return found === undefined ? { kind: 'none', tried: urls } : { kind: 'found', ...found };
}

/**
 * The first document at `urls` that `accept` takes, in order. A document `accept` refuses is
 * thrown when no later one is usable; an unreachable location (after every other was tried,
 * or at once for a network failure) is thrown as transient; undefined when none exists.
 */
export async function firstUsableMetadata<T>(
  urls: readonly string[],
  owner: string,
  options: MetadataRequestOptions,
  accept: (document: Record<string, unknown>, url: string) => T,
): Promise<{ metadata: T; url: string } | undefined> {
  let rejected: unknown;
  let transient: Extract<MetadataFetchResult, { kind: 'transient' }> | undefined;
  for (const url of urls) {
    const result = await fetchMetadataDocument(new URL(url), options);
    if (result.kind === 'transient') {
      transient ??= result;
      if (result.status === undefined) break;
      continue;
    }
    if (result.kind === 'absent') continue;
    try {
      return { metadata: accept(result.document, url), url };
    } catch (error) {
      rejected ??= error;
    }
  }
  if (rejected !== undefined) throw rejected;
  if (transient !== undefined) throw unreachable(options.server, `the metadata of ${owner}`, transient);
  return undefined;
}

/**
 * Check a metadata document of `issuer`. Throws a permanent DISCOVERY_FAILED error naming
 * `server` when it must not be used; returns it unchanged otherwise.
 */
export function validateAuthorizationServerMetadata(
  document: Record<string, unknown>,
  issuer: string,
  server: string,
  url = 'the metadata document',
): oauth.AuthorizationServer {
  const claimed = document['issuer'];
  if (typeof claimed !== 'string' || !sameIdentifier(claimed, issuer)) {
    throw discoveryError(
      server,
      `the authorization server metadata at ${url} names issuer ${quote(claimed)}, not ${quote(issuer)}, so it is not used (RFC 8414 §3.3).`,
      { next: operator("ask the server operator to fix the authorization server's issuer or metadata") },
    );
  }
  const insecure = insecureEndpoints(document, isLoopbackUrl(issuer));
  if (insecure.length > 0) {
    throw discoveryError(
      server,
      `the authorization server ${quote(issuer)} lists endpoints latchkey will not use (${insecure.join(', ')}): endpoints must be https URLs.`,
      { next: operator('ask the server operator to serve every OAuth endpoint over https') },
    );
  }
  return document as unknown as oauth.AuthorizationServer;
}

/** Names of endpoint fields that are not valid https URLs (or loopback http for a loopback AS). */
function insecureEndpoints(document: Record<string, unknown>, loopbackIssuer: boolean): string[] {
  const fields: [string, unknown][] = Object.entries(document).filter(([name]) => isEndpointField(name));
  const aliases = document['mtls_endpoint_aliases'];
  if (typeof aliases === 'object' && aliases !== null && !Array.isArray(aliases)) {
    for (const [name, value] of Object.entries(aliases)) {
      if (isEndpointField(name)) fields.push([`mtls_endpoint_aliases.${name}`, value]);
    }
  }
  return fields
    .filter(([, value]) => {
      const url = typeof value === 'string' ? parseUrl(value) : undefined;
      if (url === undefined) return true;
      return !(
        url.protocol === 'https:' ||
        (loopbackIssuer && url.protocol === 'http:' && isLoopbackUrl(url))
      );
    })
    .map(([name]) => name);
}

function isEndpointField(name: string): boolean {
  return name.endsWith('_endpoint') || name === 'jwks_uri';
}
