import { isUsable, proactiveRefreshAt, refreshTokenUsable } from '../credential/expiry.js';
import type { StoredCredential } from '../credential/model.js';
import type { UpstreamConfig } from './config.js';
import type { ServeContext } from './context.js';
import { httpErrorFor } from './errors.js';
import { HttpError, iso } from './http.js';

/** A connection as the API shows it (`GET /v1/subjects/{subject}/connections`). */
export interface ConnectionView {
  upstream: string;
  state: 'connected' | 'refresh-due' | 'retrying' | 'needs-login';
  expires_at: string | null;
  last_refresh_at: string | null;
  last_error: { code: string; message: string; at: string } | null;
  scopes: readonly string[];
}

/** The subject's connections, one per configured upstream that has a credential for them. */
export async function listConnections(ctx: ServeContext, subject: string): Promise<ConnectionView[]> {
  const views: ConnectionView[] = [];
  for (const upstream of ctx.upstreams.values()) {
    const cred = pick(await ctx.store.listCredentials({ server: upstream.url, subject }));
    if (cred !== undefined) views.push(viewOf(upstream, cred, Date.now()));
  }
  return views;
}

/** A healthy credential if there is one, else the newest (as the manager chooses). */
function pick(list: StoredCredential[]): StoredCredential | undefined {
  const healthy = list.filter((c) => c.status.state !== 'needs-login');
  return (healthy.length > 0 ? healthy : list).sort((a, b) => b.updatedAt - a.updatedAt)[0];
}

function viewOf(upstream: UpstreamConfig, cred: StoredCredential, now: number): ConnectionView {
  const { status } = cred;
  return {
    upstream: upstream.id,
    state: stateOf(cred, now),
    expires_at: iso(cred.expiresAt),
    last_refresh_at: iso(status.lastRefreshAt),
    last_error:
      status.lastError === undefined
        ? null
        : {
            code: status.lastError.code,
            message: status.lastError.message,
            at: new Date(status.lastError.at).toISOString(),
          },
    scopes: cred.scopes,
  };
}

/**
 * The stored state in the API's words. `refresh-due` is derived: past the proactive point,
 * or already unusable but refreshable. A token that is unusable and cannot be refreshed
 * needs a login even before anyone has tried.
 */
function stateOf(cred: StoredCredential, now: number): ConnectionView['state'] {
  if (cred.status.state === 'needs-login') return 'needs-login';
  const refreshable = cred.secrets.refreshToken !== undefined && refreshTokenUsable(cred, now);
  if (!isUsable(cred, now))
    return refreshable ? (cred.status.state === 'retrying' ? 'retrying' : 'refresh-due') : 'needs-login';
  if (cred.status.state === 'retrying') return 'retrying';
  return now >= proactiveRefreshAt(cred) ? 'refresh-due' : 'connected';
}

export interface TokenView {
  access_token: string;
  token_type: string;
  expires_at: string | null;
}

/** A token valid now, refreshed if needed; never starts a login (the app must reconnect). */
export async function tokenFor(
  ctx: ServeContext,
  subject: string,
  upstream: UpstreamConfig,
): Promise<TokenView> {
  try {
    const token = await ctx.manager.getToken(upstream.url, { subject, interactive: false });
    return { access_token: token.token, token_type: token.tokenType, expires_at: iso(token.expiresAt) };
  } catch (error) {
    throw httpErrorFor(ctx, error, { subject, upstream });
  }
}

export interface DisconnectView {
  upstream: string;
  /** Tokens the AS confirmed revoked. */
  revoked: string[];
  /** Tokens whose revocation failed transiently; they are queued and retried. */
  pending_revocation: string[];
}

/**
 * Revoke at the AS (RFC 7009) and delete: a best-effort logout, so a failed revocation is
 * queued for retry (by any instance) and the connection is gone either way.
 */
export async function disconnect(
  ctx: ServeContext,
  subject: string,
  upstream: UpstreamConfig,
): Promise<DisconnectView> {
  let reports;
  try {
    reports = await ctx.manager.logout(upstream.url, { subject });
  } catch (error) {
    throw httpErrorFor(ctx, error, { subject, upstream });
  }
  if (!reports.some((r) => r.found)) {
    throw new HttpError(404, {
      error: 'not_connected',
      message: `this subject has no connection to ${upstream.id}.`,
      upstream: upstream.id,
    });
  }
  const revoked = new Set<string>();
  const pending = new Set<string>();
  for (const report of reports) {
    if (report.revocation?.refreshToken?.status === 'revoked') revoked.add('refresh_token');
    if (report.revocation?.accessToken?.status === 'revoked') revoked.add('access_token');
    for (const type of report.pendingRevocation ?? []) pending.add(type);
  }
  return { upstream: upstream.id, revoked: [...revoked], pending_revocation: [...pending] };
}
