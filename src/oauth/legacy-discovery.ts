/**
 * Authorization server discovery for 2025-03-26 servers: the revision before protected
 * resource metadata (RFC 9728). There the server's origin is the "authorization base URL":
 * its RFC 8414 metadata is read at the origin's root, and a server without metadata is
 * reached at the default endpoints `/authorize`, `/token` and `/register` on that origin.
 *
 * Which servers get these rules: only those that publish no protected resource metadata
 * (discovery.ts decides; PRM is a MUST for servers since 2025-06-18, so a server without it
 * is speaking 2025-03-26 authorization whatever else it says). The protocol version cannot
 * decide it: the 401 that starts discovery answers the `initialize` that would negotiate it,
 * and a client's `MCP-Protocol-Version` is only what the client proposes. A server with PRM
 * keeps every strict rule: an issuer mismatch is refused (AUTH-14) and an AS without
 * advertised PKCE S256 is refused (AUTH-45).
 *
 * The two 2025-03-26 allowances, each reported through `warn` because each disables a check:
 * - Root metadata whose `issuer` is not the origin is used, but only when that issuer is on
 *   the server's own origin (the document came from there, so the origin vouches for it).
 *   An issuer on another origin is still refused, as in every revision.
 * - No metadata at all, and the server asked for a Bearer token: the default endpoints. The
 *   document built for them lists PKCE S256, because 2025-03-26 requires its authorization
 *   servers to implement OAuth 2.1, which requires PKCE; latchkey always sends S256, but
 *   nothing confirms that the AS checks it.
 */
import type * as oauth from 'oauth4webapi';

import { discoveryError, type MetadataRequestOptions, parseUrl, quote } from './metadata-http.js';
import { configure } from '../next-action.js';
import {
  authorizationServerMetadataUrls,
  firstUsableMetadata,
  isIssuerIdentifier,
  validateAuthorizationServerMetadata,
} from './server-metadata.js';

/** `sourceUrl` of a cached default-endpoints document: it was built, not fetched. */
export const LEGACY_DEFAULTS_SOURCE = 'urn:latchkey:2025-03-26:default-endpoints';

export type LegacyAuthorizationServer =
  /** Metadata served at the origin's root; `mismatch` when its issuer is not the origin. */
  | { kind: 'metadata'; metadata: oauth.AuthorizationServer; url: string; mismatch: boolean }
  /** No metadata: the default endpoints on the origin. */
  | { kind: 'defaults'; metadata: oauth.AuthorizationServer; url: typeof LEGACY_DEFAULTS_SOURCE };

export interface LegacyDiscoveryOptions extends MetadataRequestOptions {
  /**
   * Whether the server's 401 carried a Bearer challenge. Without one, a server that also
   * serves no metadata is not taken to be an OAuth resource at all (no default endpoints).
   */
  bearerChallenge: boolean;
}

/**
 * The authorization server of a 2025-03-26 `server`, found from its origin. Throws
 * DISCOVERY_FAILED (a rejected document, or no metadata and no Bearer challenge), or the
 * transient error of an unreachable origin.
 */
export async function findLegacyAuthorizationServer(
  options: LegacyDiscoveryOptions,
): Promise<LegacyAuthorizationServer> {
  const { server } = options;
  const origin = new URL(server).origin;
  const urls = authorizationServerMetadataUrls(origin);
  const found = await firstUsableMetadata(urls, origin, options, (document, url) =>
    legacyMetadata(document, origin, server, url),
  );
  if (found !== undefined) return { ...found.metadata, url: found.url };
  if (!options.bearerChallenge) {
    throw discoveryError(
      server,
      `the server publishes no protected resource metadata and ${origin} is not an authorization server either (tried ${urls.join(', ')}).`,
      { next: configure('check the server URL; the server does not support MCP authorization discovery') },
    );
  }
  return { kind: 'defaults', metadata: defaultEndpoints(origin), url: LEGACY_DEFAULTS_SOURCE };
}

/** The metadata the default endpoints stand for; see the module comment for the PKCE entry. */
export function defaultEndpoints(origin: string): oauth.AuthorizationServer {
  return {
    issuer: origin,
    authorization_endpoint: `${origin}/authorize`,
    token_endpoint: `${origin}/token`,
    registration_endpoint: `${origin}/register`,
    response_types_supported: ['code'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    code_challenge_methods_supported: ['S256'],
  };
}

/** What the user is told when a 2025-03-26 allowance is used for `server`. */
export function legacyWarning(server: string, found: LegacyAuthorizationServer): string {
  if (found.kind === 'defaults') {
    const origin = found.metadata.issuer;
    return (
      `${server} publishes no OAuth metadata, so latchkey uses the 2025-03-26 default endpoints ` +
      `${origin}/authorize, /token and /register. Risk: nothing confirms that these belong to an ` +
      `authorization server or that it enforces PKCE; this is only done for servers without ` +
      `protected resource metadata.`
    );
  }
  return (
    `${server} publishes no protected resource metadata, and the authorization server metadata at ` +
    `${found.url} names issuer ${quote(found.metadata.issuer)}, not ${new URL(found.url).origin}. ` +
    `latchkey uses it under the 2025-03-26 rules because the issuer is on the server's own origin. ` +
    `Risk: the RFC 8414 §3.3 issuer check, which stops one authorization server's metadata from ` +
    `standing in for another's, is off for this server.`
  );
}

/**
 * A root metadata document, validated as usual when its issuer is `origin`; else, when its
 * issuer is on `origin`, validated for that issuer (https endpoints and all) and marked.
 */
function legacyMetadata(
  document: Record<string, unknown>,
  origin: string,
  server: string,
  url: string,
): Omit<Extract<LegacyAuthorizationServer, { kind: 'metadata' }>, 'url'> {
  try {
    return {
      kind: 'metadata',
      metadata: validateAuthorizationServerMetadata(document, origin, server, url),
      mismatch: false,
    };
  } catch (error) {
    const claimed = document['issuer'];
    if (!isIssuerIdentifier(claimed) || parseUrl(claimed)?.origin !== origin) throw error;
    const metadata = validateAuthorizationServerMetadata(document, claimed, server, url);
    return { kind: 'metadata', metadata, mismatch: true };
  }
}
