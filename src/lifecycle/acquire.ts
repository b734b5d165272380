import { randomBytes } from 'node:crypto';

import { type CredentialKey, keyId } from '../credential/key.js';
import type { StoredCredential } from '../credential/model.js';
import { secrets } from '../redact.js';
import { credentialFromTokenResponse, type TokenEndpointResult } from '../credential/token-response.js';
import { ErrorCode, LatchkeyError } from '../errors.js';
import { loginAction } from '../next-action.js';
import type { BearerChallenge } from '../oauth/types.js';
import { type CredentialTable, type EventLog, EventType, type LeaseTable } from '../store/contract.js';
import type { EngineContext } from './context.js';
import { breakLeaseIfHolderDead, pollDelay, sleep } from './lease.js';
import {
  holdLease,
  holdsLease,
  type LoginClaim,
  loginLeaseKey,
  shouldReplace,
  takeOver,
} from './login-lease.js';

/** An acquisition writes the credential under the login lease and announces itself in the event log. */
export type AcquireStore = CredentialTable & LeaseTable & EventLog;

/** Why the manager is asking for an interactive acquisition. */
export type AcquireReason =
  'no-credential' | 'needs-login' | 'no-refresh-token' | 'token-rejected' | 'scope' | 'requested';

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
  /**
   * A non-secret id of this login attempt, published in the `login-started` event. A browser
   * flow puts it in front of its OAuth `state`, so the loopback page can tell a tab from a
   * replaced login apart from a forged or unknown one.
   */
  attempt?: string;
  /** This login took over another process's pending one (its loopback port may be freeing). */
  replacing?: boolean;
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
  /** The enterprise IdP session the tokens were derived from (recorded for `logout --idp`). */
  idp?: string;
  /** The tokens are an enterprise IdP session (`login --idp`), not a server's. */
  idpSession?: boolean;
}

/**
 * The pluggable interactive step at the bottom of the `getAccessToken` ladder. It runs a
 * flow and returns tokens; the manager persists them. Registration and discovery results are
 * the flow's to store.
 */
export type AcquireHook = (request: AcquireRequest) => Promise<AcquiredTokens>;

/** What the manager asks `acquireCredential` for. */
export interface LoginRequest extends Omit<AcquireRequest, 'signal' | 'attempt' | 'replacing'> {
  /** A login the person started: it replaces any pending login at once. */
  explicit: boolean;
  /** Tokens already in hand (`saveAcquired`): no flow runs, so no `login-started` event. */
  tokensInHand?: boolean;
}

/** Thrown inside this module when another process took the login lease over. */
class Replaced extends Error {}

/**
 * Interactive login is single-flight across processes (design rule 6): one flow per
 * (server, subject) at a time, and other processes wait for the credential it writes
 * instead of opening a second tab. The exception is a pending login nobody is finishing:
 * a newer one replaces it (login-lease.ts says when), and this process, if it is the one
 * replaced, abandons its flow (its loopback listener closes) and adopts what the newer
 * login writes.
 */
export async function acquireCredential(
  ctx: EngineContext<AcquireStore>,
  hook: AcquireHook,
  request: LoginRequest,
  loginTimeoutMs: number,
  signal?: AbortSignal,
): Promise<StoredCredential> {
  const leaseKey = loginLeaseKey(request.server, request.subject);
  const wantedAt = Date.now();
  const deadline = wantedAt + loginTimeoutMs;
  const before = await generations(ctx, request);
  let replaced = false;
  for (;;) {
    const claim = await claimLease(ctx, leaseKey, request, wantedAt, replaced);
    if (claim === undefined) {
      const written = await writtenSince(ctx, request, before);
      if (written !== undefined) return written;
      await breakLeaseIfHolderDead(ctx.store, leaseKey);
      if (Date.now() > deadline) throw loginWaitTimeout(request.server);
      await sleep(pollDelay(Math.max(ctx.pollMs, 100)), signal);
      continue;
    }
    try {
      // Someone may have finished a login between our first look and taking the lease.
      const written = await writtenSince(ctx, request, before);
      if (written !== undefined) return written;
      if (replaced) throw replacementEnded(request.server);
      const tokens = await runFlowUnderLease(ctx, hook, { leaseKey, request, claim, deadline }, signal);
      return await storeAcquired(ctx, request, tokens);
    } catch (error) {
      if (!(error instanceof Replaced)) throw error;
      replaced = true;
      ctx.logger.info(`${request.server}: a newer login replaced this one; waiting for its credential`);
    } finally {
      await ctx.store.releaseLease(leaseKey, ctx.holder.owner).catch(() => undefined);
    }
  }
}

/**
 * The lease, free or taken over from a pending login this one should replace; undefined
 * means wait. Once replaced, a process only waits: it never takes the lease back.
 */
async function claimLease(
  ctx: EngineContext<AcquireStore>,
  key: CredentialKey,
  request: LoginRequest,
  wantedAt: number,
  replaced: boolean,
): Promise<LoginClaim | undefined> {
  if ((await ctx.store.acquireLease(key, ctx.holder, ctx.leaseTtlMs)) !== undefined)
    return { replaced: false };
  if (replaced) return undefined;
  const pending = await ctx.store.getLease(key);
  if (pending === undefined || pending.owner === ctx.holder.owner) return undefined;
  if (!(await shouldReplace(ctx, pending, { ...request, wantedAt }))) return undefined;
  if (!(await takeOver(ctx, key, pending))) return undefined;
  ctx.logger.info(`${request.server}: replacing a pending login started by process ${pending.pid}`);
  return { replaced: true };
}

interface HookRun {
  leaseKey: CredentialKey;
  request: LoginRequest;
  claim: LoginClaim;
  deadline: number;
}

/**
 * Announce the login and run the flow while renewing the lease. Losing the lease (a newer
 * login took it over) aborts the flow and throws `Replaced`, even when the flow finished at
 * the same moment: the newer login wins.
 */
async function runFlowUnderLease(
  ctx: EngineContext<AcquireStore>,
  hook: AcquireHook,
  { leaseKey, request, claim, deadline }: HookRun,
  signal?: AbortSignal,
): Promise<AcquiredTokens> {
  const lost = new AbortController();
  const stopHolding = holdLease(ctx, leaseKey, () => lost.abort(new Replaced('replaced')));
  const timeout = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
  const combined = AbortSignal.any([timeout, lost.signal, ...(signal === undefined ? [] : [signal])]);
  const attempt = randomBytes(6).toString('hex');
  const { explicit, tokensInHand, ...hookRequest } = request;
  if (tokensInHand !== true) {
    await ctx.store.appendEvent({
      type: EventType.LOGIN_STARTED,
      server: request.server,
      issuer: '',
      subject: request.subject,
      detail: { attempt, explicit, replaced: claim.replaced },
    });
  }
  ctx.stats.acquisitions++;
  let tokens: AcquiredTokens;
  try {
    tokens = await hook({ ...hookRequest, attempt, replacing: claim.replaced, signal: combined });
    if (!(await holdsLease(ctx, leaseKey))) lost.abort(new Replaced('replaced'));
  } catch (error) {
    if (lost.signal.aborted) throw lost.signal.reason as Error;
    throw error;
  } finally {
    stopHolding();
  }
  if (lost.signal.aborted) throw lost.signal.reason as Error;
  return tokens;
}

/** Persist the flow's tokens (any generation: a login replaces what is there) and read them back. */
async function storeAcquired(
  ctx: EngineContext<AcquireStore>,
  request: LoginRequest,
  tokens: AcquiredTokens,
): Promise<StoredCredential> {
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
    ...(tokens.idp === undefined ? {} : { idp: tokens.idp }),
    ...(tokens.idpSession === true ? { idpSession: true } : {}),
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
      next: loginAction(request.server, { again: true, detail: 'first check that the store is writable' }),
    });
  }
  return stored;
}

type Generations = Map<string, number>;

async function generations(ctx: EngineContext<AcquireStore>, request: LoginRequest): Promise<Generations> {
  const list = await ctx.store.listCredentials({ server: request.server, subject: request.subject });
  return new Map(list.map((c) => [keyId(c.key), c.generation]));
}

/** A credential some other login wrote after we started waiting. */
async function writtenSince(
  ctx: EngineContext<AcquireStore>,
  request: LoginRequest,
  before: Generations,
): Promise<StoredCredential | undefined> {
  const list = await ctx.store.listCredentials({ server: request.server, subject: request.subject });
  return list.find((c) => c.status.state !== 'needs-login' && c.generation > (before.get(keyId(c.key)) ?? 0));
}

function replacementEnded(server: string): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.LOGIN_REQUIRED,
    'a newer login replaced the one this process started, and it ended without signing in.',
    { server, retryable: false, next: loginAction(server) },
  );
}

function loginWaitTimeout(server: string): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.WAIT_TIMEOUT,
    'timed out waiting for a login running in another process.',
    {
      server,
      retryable: true,
      next: loginAction(server, { detail: 'or finish the login in the browser window already open' }),
    },
  );
}

/** Why LOGIN_REQUIRED was thrown, for a caller that may not run the acquisition hook. */
export function describeReason(reason: AcquireReason): string {
  switch (reason) {
    case 'no-credential':
      return 'no credential is stored for this server';
    case 'needs-login':
      return 'the stored credential was rejected by the authorization server';
    case 'no-refresh-token':
      return 'the access token expired and there is no refresh token';
    case 'token-rejected':
      return 'the server rejected the access token and there is no refresh token';
    case 'scope':
      return 'the stored credential lacks the requested scopes';
    case 'requested':
      return 'a new login was requested';
  }
}
