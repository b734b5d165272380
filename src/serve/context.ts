import type { CredentialManager } from '../lifecycle/manager.js';
import type { Logger } from '../log.js';
import type { ServeStore } from '../store/serve-contract.js';
import type { UpstreamConfig } from './config.js';
import type { EventStreams } from './event-stream.js';
import type { ServeMetrics } from './metrics.js';
import { HttpError } from './http.js';
import type { JwtVerifier } from './jwt.js';
import type { McpGateway } from './mcp-gateway.js';
import { isSubject } from './subject.js';

/** What every handler of `latchkey serve` works with. */
export interface ServeContext {
  readonly store: ServeStore;
  readonly manager: CredentialManager;
  readonly upstreams: ReadonlyMap<string, UpstreamConfig>;
  /** External base URL, no trailing slash (config.ts parsePublicUrl). */
  readonly publicUrl: string;
  readonly logger: Logger;
  /** For requests to ASes and upstreams. Default: global fetch. */
  readonly fetch: typeof fetch | undefined;
  readonly requestTimeoutMs: number;
  /** How long a connect link stays usable. */
  readonly connectTtlMs: number;
  /** How long a portal link can be opened (portal-auth.ts). */
  readonly portalLinkTtlMs: number;
  /** How long a portal session lasts from the link's opening. */
  readonly portalSessionTtlMs: number;
  /** Origins `return_to` may name; undefined: any http(s) origin. */
  readonly returnToOrigins?: readonly string[] | undefined;
  /** Where a person without a portal session is sent to sign in at the application. */
  readonly portalSignInUrl?: string | undefined;
  /** Verifies user JWTs (`/mcp/{upstream}`); undefined when none are configured. */
  readonly jwt?: JwtVerifier | undefined;
  /** The MCP endpoints' upstream links and host sessions (mcp-endpoint.ts). */
  readonly mcpGateway?: McpGateway | undefined;
  /** The open GET /v1/events streams. */
  readonly events: EventStreams;
  readonly metrics: ServeMetrics;
}

/** The redirect URI registered at every AS: the one public callback. */
export function callbackUrl(ctx: Pick<ServeContext, 'publicUrl'>): string {
  return `${ctx.publicUrl}/oauth/callback`;
}

/** Where an app starts (POSTs) a new connection of `subject` to `upstream`. */
export function connectUrl(ctx: Pick<ServeContext, 'publicUrl'>, subject: string, upstream: string): string {
  return `${ctx.publicUrl}/v1/subjects/${encodeURIComponent(subject)}/connections/${encodeURIComponent(upstream)}`;
}

export function checkedSubject(raw: string): string {
  let subject: string;
  try {
    subject = decodeURIComponent(raw);
  } catch {
    subject = '';
  }
  if (!isSubject(subject)) {
    throw new HttpError(400, {
      error: 'invalid_subject',
      message: 'a subject is 1-200 characters of letters, digits and . _ : @ + -',
    });
  }
  return subject;
}

export function upstreamOf(ctx: ServeContext, raw: string): UpstreamConfig {
  const id = safeDecode(raw);
  const upstream = ctx.upstreams.get(id);
  if (upstream === undefined) {
    throw new HttpError(404, {
      error: 'unknown_upstream',
      message: `no upstream named ${JSON.stringify(id.slice(0, 64))} is configured; GET /v1/upstreams lists them.`,
    });
  }
  return upstream;
}

function safeDecode(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
