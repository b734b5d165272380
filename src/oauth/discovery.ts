/**
 * The MCP discovery chain for one server: protected resource metadata (RFC 9728), then the
 * metadata of the authorization server it names (RFC 8414 / OIDC Discovery), cached in the
 * credential store.
 *
 * Choices beyond the spec:
 * - No PRM anywhere (every location answered without a document): the server is a
 *   2025-03-26 server and its origin is its AS (legacy-discovery.ts: root metadata, a
 *   same-origin issuer mismatch or the default endpoints, each with a warning). A network
 *   error or 5xx while looking for PRM never falls back.
 * - Several `authorization_servers` (AUTH-09): `preferredIssuer` (the issuer of an existing
 *   credential) first when listed, then the others in document order; the first whose
 *   metadata validates is used. A preferred issuer the PRM no longer lists is ignored, and
 *   the caller sees the new issuer in the result (AUTH-28).
 * - Cache: PRM under the canonical server, AS metadata under its issuer, written only after
 *   the whole chain succeeded, so a failed or rejected discovery stores nothing. Entries are
 *   used for `maxAgeMs` (default 24 h); an older entry is refetched, but still used if that
 *   refetch fails transiently. A challenge `resource_metadata` URL other than the one the
 *   cached PRM came from bypasses the cache. Cached documents are validated again on read.
 *   Negative results (no PRM) are not cached: a legacy server costs its PRM probes each time.
 * - Cache reads and writes are best effort: a store that fails here costs a refetch only.
 */
import type * as oauth from 'oauth4webapi';

import { canonicalServer } from '../credential/key.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import type { DiscoveryCache, DiscoveryKind, DiscoveryRecord } from '../store/contract.js';
import { configure, operator } from '../next-action.js';
import { createLogger } from '../log.js';
import {
  findLegacyAuthorizationServer,
  type LegacyAuthorizationServer,
  legacyWarning,
} from './legacy-discovery.js';
import { isLoopbackUrl } from './loopback.js';
import { transientAsError } from './oauth-errors.js';
import { discoveryError, type MetadataRequestOptions } from './metadata-http.js';
import {
  fetchResourceMetadata,
  type ProtectedResourceMetadata,
  resourceMetadataLocations,
  rootLocation,
  validateResourceMetadata,
} from './resource-metadata.js';
import {
  authorizationServerMetadataUrls,
  findAuthorizationServerMetadata,
  noMetadataError,
  validateAuthorizationServerMetadata,
} from './server-metadata.js';
import type { BearerChallenge, ServerDiscovery } from './types.js';

export const DEFAULT_DISCOVERY_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** Tolerated clock difference for `fetchedAt` written by another host sharing the store. */
const CLOCK_SKEW_MS = 60_000;

export interface DiscoverServerOptions {
  store: DiscoveryCache;
  fetch?: typeof fetch | undefined;
  /** The Bearer challenge of the server's 401/403, if discovery was triggered by one. */
  challenge?: BearerChallenge | undefined;
  signal?: AbortSignal | undefined;
  /** The issuer of an existing credential for this server, preferred when still listed. */
  preferredIssuer?: string | undefined;
  /** How long cached documents are used without refetching. Default 24 h. */
  maxAgeMs?: number | undefined;
  /** Per request. Default 15 000 ms. */
  timeoutMs?: number | undefined;
  /**
   * Told when a 2025-03-26 allowance is used for a server without PRM (an issuer mismatch on
   * the server's origin, or default endpoints), naming the risk. Default: the redacting
   * logger, at `warn` (stderr).
   */
  warn?: ((message: string) => void) | undefined;
}

export interface AuthorizationServerMetadataOptions {
  /** The canonical MCP server URL the lookup is for, named by errors. */
  server: string;
  fetch?: typeof fetch | undefined;
  signal?: AbortSignal | undefined;
  maxAgeMs?: number | undefined;
  timeoutMs?: number | undefined;
}

/** Run the discovery chain for `server`. Throws DISCOVERY_FAILED, INVALID_INPUT or CANCELLED. */
export async function discoverServer(
  server: string,
  options: DiscoverServerOptions,
): Promise<ServerDiscovery> {
  const canonical = checkedServer(server);
  const ctx = context(canonical, options);
  const pending: DiscoveryRecord[] = [];
  const prm = await protectedResource(ctx, options.challenge, pending);
  const authorizationServer =
    prm === undefined
      ? await legacyAuthorizationServer(ctx, pending, options)
      : await chooseAuthorizationServer(
          ctx,
          prm.metadata.authorizationServers,
          options.preferredIssuer,
          pending,
        );
  for (const record of pending) await bestEffort(() => options.store.putDiscovery(record));
  const result: ServerDiscovery = {
    server: canonical,
    resource: prm?.metadata.resource ?? canonical,
    authorizationServer,
  };
  if (prm !== undefined) {
    result.resourceMetadata = prm.metadata.document;
    result.resourceMetadataUrl = prm.url;
    if (prm.metadata.scopesSupported !== undefined) result.scopesSupported = prm.metadata.scopesSupported;
  }
  return result;
}

/**
 * Evict what discovery cached for `server`: its PRM, and the metadata of `issuer` or, without
 * one, of every issuer the cached PRM listed (the origin's, for a server without PRM).
 * For callers whose use of a discovery result failed in a way fresher metadata might fix.
 */
export async function invalidateDiscovery(
  store: DiscoveryCache,
  server: string,
  issuer?: string,
): Promise<void> {
  const canonical = canonicalServer(server);
  const cached = await store.getDiscovery('protected-resource', canonical);
  await store.deleteDiscovery('protected-resource', canonical);
  let issuers: string[];
  if (issuer !== undefined) issuers = [issuer];
  else if (cached !== undefined) {
    const listed = cached.document['authorization_servers'];
    issuers = Array.isArray(listed) ? listed.filter((s): s is string => typeof s === 'string') : [];
  } else issuers = [new URL(canonical).origin];
  for (const spelling of issuers.flatMap(issuerSpellings)) {
    await store.deleteDiscovery('authorization-server', spelling);
  }
}

/**
 * The validated metadata of `issuer`, from the store while fresh, else fetched (AUTH-12/13
 * order) and cached. For callers that already know the issuer, such as a token refresh.
 */
export async function authorizationServerMetadata(
  store: DiscoveryCache,
  issuer: string,
  options: AuthorizationServerMetadataOptions,
): Promise<oauth.AuthorizationServer> {
  const pending: DiscoveryRecord[] = [];
  const metadata = await authorizationServer(context(options.server, { ...options, store }), issuer, pending);
  for (const record of pending) await bestEffort(() => store.putDiscovery(record));
  return metadata;
}

// ---------------------------------------------------------------------------------------

interface Context {
  server: string;
  store: DiscoveryCache;
  request: MetadataRequestOptions;
  maxAgeMs: number;
}

function context(
  server: string,
  options: Omit<DiscoverServerOptions, 'challenge' | 'preferredIssuer'>,
): Context {
  return {
    server,
    store: options.store,
    request: { server, fetch: options.fetch, signal: options.signal, timeoutMs: options.timeoutMs },
    maxAgeMs: options.maxAgeMs ?? DEFAULT_DISCOVERY_MAX_AGE_MS,
  };
}

function checkedServer(server: string): string {
  const canonical = canonicalServer(server);
  if (canonical.startsWith('http:') && !isLoopbackUrl(canonical)) {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, `plain http is only allowed for loopback hosts.`, {
      server: canonical,
      retryable: false,
      next: configure('use the https:// URL of the MCP server'),
    });
  }
  return canonical;
}

interface FoundResourceMetadata {
  metadata: ProtectedResourceMetadata;
  url: string;
}

/** PRM from the cache or the network; undefined when the server publishes none. */
async function protectedResource(
  ctx: Context,
  challenge: BearerChallenge | undefined,
  pending: DiscoveryRecord[],
): Promise<FoundResourceMetadata | undefined> {
  const locations = resourceMetadataLocations(ctx.server, challenge?.resourceMetadata);
  const challengeUrl = locations.find((l) => l.position === 'challenge')?.url;
  const record = await cached(ctx, 'protected-resource', ctx.server);
  let usable: FoundResourceMetadata | undefined;
  if (record !== undefined && (challengeUrl === undefined || challengeUrl === record.sourceUrl)) {
    usable = revalidateResourceMetadata(ctx.server, record);
    if (usable !== undefined && isFresh(record, ctx.maxAgeMs)) return usable;
  }
  try {
    const result = await fetchResourceMetadata(ctx.server, {
      ...ctx.request,
      resourceMetadataUrl: challengeUrl,
    });
    if (result.kind === 'none') return undefined;
    pending.push(newRecord('protected-resource', ctx.server, result.metadata.document, result.url));
    return { metadata: result.metadata, url: result.url };
  } catch (error) {
    if (usable !== undefined && isRetryable(error)) return usable;
    throw error;
  }
}

function revalidateResourceMetadata(
  server: string,
  record: DiscoveryRecord,
): FoundResourceMetadata | undefined {
  const position = record.sourceUrl === rootLocation(server) ? 'root' : 'path';
  try {
    const metadata = validateResourceMetadata(record.document, server, { url: record.sourceUrl, position });
    return { metadata, url: record.sourceUrl };
  } catch {
    return undefined;
  }
}

/** AUTH-09: the preferred issuer first when listed, then document order; first valid wins. */
async function chooseAuthorizationServer(
  ctx: Context,
  listed: readonly string[],
  preferredIssuer: string | undefined,
  pending: DiscoveryRecord[],
): Promise<oauth.AuthorizationServer> {
  const preferred =
    preferredIssuer === undefined ? undefined : listed.find((i) => sameSpelling(i, preferredIssuer));
  const order = preferred === undefined ? listed : [preferred, ...listed.filter((i) => i !== preferred)];
  const errors: LatchkeyError[] = [];
  for (const issuer of order) {
    try {
      return await authorizationServer(ctx, issuer, pending);
    } catch (error) {
      if (!isLatchkeyError(error) || error.code === ErrorCode.CANCELLED) throw error;
      errors.push(error);
    }
  }
  const [first] = errors;
  if (first === undefined) {
    throw discoveryError(ctx.server, 'the protected resource metadata lists no authorization server.', {
      next: operator('ask the server operator to list its https authorization server in its metadata'),
    });
  }
  if (errors.length === 1) throw first;
  const message = `none of the ${errors.length} authorization servers the server lists could be used; the first failed: ${first.message}`;
  const next = first.next ?? { kind: 'retry', server: ctx.server };
  // All of them down is an outage; any permanent failure among them is a discovery problem.
  if (errors.every(isTransient)) throw transientAsError(ctx.server, message, {}, { next, cause: first });
  throw discoveryError(ctx.server, message, {
    retryable: errors.some((e) => e.retryable),
    next,
    cause: first,
  });
}

/** The 2025-03-26 rules (legacy-discovery.ts) for a server without PRM; allowances are warned of. */
async function legacyAuthorizationServer(
  ctx: Context,
  pending: DiscoveryRecord[],
  options: Pick<DiscoverServerOptions, 'challenge' | 'warn'>,
): Promise<oauth.AuthorizationServer> {
  const found = await legacyLookup(ctx, pending, options.challenge !== undefined);
  if (found.kind === 'defaults' || found.mismatch) {
    const warn = options.warn ?? ((text: string) => createLogger().warn(text, { server: ctx.server }));
    warn(legacyWarning(ctx.server, found));
  }
  return found.metadata;
}

async function legacyLookup(
  ctx: Context,
  pending: DiscoveryRecord[],
  bearerChallenge: boolean,
): Promise<LegacyAuthorizationServer> {
  const found = await findLegacyAuthorizationServer({ ...ctx.request, bearerChallenge });
  const document = found.metadata as unknown as Record<string, unknown>;
  pending.push(newRecord('authorization-server', found.metadata.issuer, document, found.url));
  return found;
}

/** AS metadata of `issuer` from the cache or the network. */
async function authorizationServer(
  ctx: Context,
  issuer: string,
  pending: DiscoveryRecord[],
): Promise<oauth.AuthorizationServer> {
  let stale: oauth.AuthorizationServer | undefined;
  let legacy = false;
  for (const spelling of issuerSpellings(issuer)) {
    const record = await cached(ctx, 'authorization-server', spelling);
    if (record === undefined) continue;
    let metadata: oauth.AuthorizationServer;
    try {
      metadata = validateAuthorizationServerMetadata(record.document, issuer, ctx.server, record.sourceUrl);
    } catch {
      continue;
    }
    if (isFresh(record, ctx.maxAgeMs)) return metadata;
    stale ??= metadata;
    legacy ||= !authorizationServerMetadataUrls(issuer).includes(record.sourceUrl);
  }
  try {
    const search = await findAuthorizationServerMetadata(issuer, ctx.request);
    if (search.kind === 'none') {
      // Found by the 2025-03-26 rules before (a refresh, later): found the same way again.
      if (legacy) return await legacyAgain(ctx, issuer, pending);
      throw noMetadataError(ctx.server, issuer, search.tried);
    }
    const { metadata, url } = search;
    pending.push(
      newRecord('authorization-server', metadata.issuer, metadata as unknown as Record<string, unknown>, url),
    );
    return metadata;
  } catch (error) {
    if (stale !== undefined && isRetryable(error)) return stale;
    throw error;
  }
}

/** The 2025-03-26 lookup for an issuer it found before; another issuer now is an error. */
async function legacyAgain(
  ctx: Context,
  issuer: string,
  pending: DiscoveryRecord[],
): Promise<oauth.AuthorizationServer> {
  const found = await legacyLookup(ctx, pending, true);
  if (sameSpelling(found.metadata.issuer, issuer)) return found.metadata;
  pending.pop();
  throw noMetadataError(ctx.server, issuer, authorizationServerMetadataUrls(issuer));
}

/** `https://as.example.com` and `https://as.example.com/` name the same issuer (see sameIdentifier). */
function issuerSpellings(issuer: string): string[] {
  if (/^https?:\/\/[^/?#]+$/i.test(issuer)) return [issuer, `${issuer}/`];
  if (/^https?:\/\/[^/?#]+\/$/i.test(issuer)) return [issuer, issuer.slice(0, -1)];
  return [issuer];
}

function sameSpelling(a: string, b: string): boolean {
  return issuerSpellings(a).includes(b);
}

async function cached(ctx: Context, kind: DiscoveryKind, id: string): Promise<DiscoveryRecord | undefined> {
  return bestEffort(() => ctx.store.getDiscovery(kind, id));
}

function newRecord(
  kind: DiscoveryKind,
  id: string,
  document: Record<string, unknown>,
  sourceUrl: string,
): DiscoveryRecord {
  return { kind, id, document, sourceUrl, fetchedAt: Date.now() };
}

function isFresh(record: DiscoveryRecord, maxAgeMs: number): boolean {
  const age = Date.now() - record.fetchedAt;
  return age >= -CLOCK_SKEW_MS && age < maxAgeMs;
}

/** A discovery failure that may pass, so a cached document may stand in meanwhile. */
function isRetryable(error: unknown): boolean {
  return (
    isLatchkeyError(error) &&
    error.retryable &&
    (error.code === ErrorCode.DISCOVERY_FAILED || isTransient(error))
  );
}

function isTransient(error: LatchkeyError): boolean {
  return error.code === ErrorCode.AS_UNAVAILABLE || error.code === ErrorCode.RATE_LIMITED;
}

async function bestEffort<T>(action: () => Promise<T>): Promise<T | undefined> {
  try {
    return await action();
  } catch {
    return undefined;
  }
}
