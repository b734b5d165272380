import { type CredentialKey, keyId } from '../credential/key.js';
import type { StoredCredential } from '../credential/model.js';
import { secrets } from '../credential/redact.js';
import { credentialFromTokenResponse, type TokenEndpointResult } from '../credential/token-response.js';
import { ErrorCode, LatchkeyError } from '../errors.js';
import type { BearerChallenge } from '../oauth/types.js';
import { EventType } from '../store/contract.js';
import type { EngineContext } from './context.js';
import { breakLeaseIfHolderDead, pollDelay, sleep } from './lease.js';

/** Why the manager is asking for an interactive acquisition. */
export type AcquireReason = 'no-credential' | 'needs-login' | 'no-refresh-token' | 'scope';

export interface AcquireRequest {
  server: string;
  subject: string;
  /** Scopes the caller asked for, if any. */
  scopes?: readonly string[];
  /** Scopes the current credential holds; step-up asks for their union with `scopes` (AUTH-34). */
  grantedScopes?: readonly string[];
  /** The server's 401/403 Bearer challenge that led here, for discovery and scope selection. */
  challenge?: BearerChallenge;
  /** The issuer of the current credential, preferred when the server still lists it. */
  issuer?: string;
  reason: AcquireReason;
  signal: AbortSignal;
}

/** What an acquisition flow (browser, device, client credentials) hands back. */
export interface AcquiredTokens {
  issuer: string;
  clientId: string;
  /** The end user; defaults to the manager's subject. */
  subject?: string;
  response: TokenEndpointResult;
  /** Epoch ms taken just before the token request was sent. */
  requestedAt: number;
  requestedScopes?: readonly string[];
  /** False for externally supplied tokens, which logout must not revoke. Default true. */
  owned?: boolean;
  /** The RFC 8707 `resource` the grant was sent with (`null`: none); refreshes send the same. */
  resource?: string | null;
}

/**
 * The pluggable interactive step at the bottom of the `getAccessToken` ladder. It runs a
 * flow and returns tokens; the manager persists them. Registration and discovery results are
 * the flow's to store.
 */
export type AcquireHook = (request: AcquireRequest) => Promise<AcquiredTokens>;

/** Lease key for "someone is logging in to this server as this subject". */
export function loginLeaseKey(server: string, subject: string): CredentialKey {
  return { server, issuer: '\u0000login', subject };
}

/**
 * Interactive login is single-flight across processes too (design rule 6): one flow per
 * (server, subject) at a time; other processes wait for the credential it writes instead of
 * opening a second browser tab.
 */
export async function acquireCredential(
  ctx: EngineContext,
  hook: AcquireHook,
  request: Omit<AcquireRequest, 'signal'>,
  loginTimeoutMs: number,
  signal?: AbortSignal,
): Promise<StoredCredential> {
  const leaseKey = loginLeaseKey(request.server, request.subject);
  const deadline = Date.now() + loginTimeoutMs;
  const before = await generations(ctx, request);
  while ((await ctx.store.acquireLease(leaseKey, ctx.holder, ctx.leaseTtlMs)) === undefined) {
    const written = await writtenSince(ctx, request, before);
    if (written !== undefined) return written;
    await breakLeaseIfHolderDead(ctx.store, leaseKey);
    if (Date.now() > deadline) throw loginWaitTimeout(request.server);
    await sleep(pollDelay(Math.max(ctx.pollMs, 100)), signal);
  }
  const renew = setInterval(
    () => {
      void ctx.store.acquireLease(leaseKey, ctx.holder, ctx.leaseTtlMs).catch(() => undefined);
    },
    Math.max(50, ctx.leaseTtlMs / 3),
  );
  renew.unref();
  try {
    // Someone may have finished a login between our first look and taking the lease.
    const written = await writtenSince(ctx, request, before);
    if (written !== undefined) return written;
    return await runHook(ctx, hook, request, deadline, signal);
  } finally {
    clearInterval(renew);
    await ctx.store.releaseLease(leaseKey, ctx.holder.owner).catch(() => undefined);
  }
}

async function runHook(
  ctx: EngineContext,
  hook: AcquireHook,
  request: Omit<AcquireRequest, 'signal'>,
  deadline: number,
  signal?: AbortSignal,
): Promise<StoredCredential> {
  const timeout = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
  const combined = signal === undefined ? timeout : AbortSignal.any([timeout, signal]);
  ctx.stats.acquisitions++;
  const tokens = await hook({ ...request, signal: combined });
  const key: CredentialKey = {
    server: request.server,
    issuer: tokens.issuer,
    subject: tokens.subject ?? request.subject,
  };
  const record = credentialFromTokenResponse(tokens.response, {
    key,
    clientId: tokens.clientId,
    requestedAt: tokens.requestedAt,
    ...(tokens.requestedScopes === undefined ? {} : { requestedScopes: tokens.requestedScopes }),
    ...(tokens.resource === undefined ? {} : { resource: tokens.resource }),
    owned: tokens.owned ?? true,
  });
  secrets.add(record.secrets.accessToken);
  secrets.add(record.secrets.refreshToken);
  const result = await ctx.store.writeCredential(
    record,
    { expectedGeneration: 'any' },
    { type: EventType.ACQUIRED, ...key, detail: { reason: request.reason } },
  );
  const stored = result.ok ? await ctx.store.getCredential(key) : undefined;
  if (stored === undefined) {
    throw new LatchkeyError(ErrorCode.STORE_UNAVAILABLE, 'the new credential could not be saved.', {
      server: request.server,
      retryable: true,
      nextStep: `check the store with \`latchkey status\`, then run \`latchkey login ${request.server}\` again`,
    });
  }
  return stored;
}

type Generations = Map<string, number>;

async function generations(
  ctx: EngineContext,
  request: Omit<AcquireRequest, 'signal'>,
): Promise<Generations> {
  const list = await ctx.store.listCredentials({ server: request.server, subject: request.subject });
  return new Map(list.map((c) => [keyId(c.key), c.generation]));
}

/** A credential some other login wrote after we started waiting. */
async function writtenSince(
  ctx: EngineContext,
  request: Omit<AcquireRequest, 'signal'>,
  before: Generations,
): Promise<StoredCredential | undefined> {
  const list = await ctx.store.listCredentials({ server: request.server, subject: request.subject });
  return list.find((c) => c.status.state !== 'needs-login' && c.generation > (before.get(keyId(c.key)) ?? 0));
}

function loginWaitTimeout(server: string): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.WAIT_TIMEOUT,
    'timed out waiting for a login running in another process.',
    {
      server,
      retryable: true,
      nextStep: `finish the login in the browser window already open, or run \`latchkey login ${server}\``,
    },
  );
}
