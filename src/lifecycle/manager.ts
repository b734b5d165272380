import { EventEmitter } from 'node:events';

import { isUsable } from '../credential/expiry.js';
import { canonicalServer } from '../credential/key.js';
import type { StoredCredential } from '../credential/model.js';
import { ErrorCode, isLatchkeyError, LatchkeyError, loginRequired } from '../errors.js';
import type { BearerChallenge } from '../oauth/types.js';
import { signerOf } from '../oauth/dpop.js';
import type { DPoPSigner } from '../oauth/dpop-proof.js';
import { type EventQuery, type LifecycleEvent } from '../store/contract.js';
import { type AcquiredTokens, type AcquireReason, acquireCredential, describeReason } from './acquire.js';
import { BackgroundRefresh } from './background-refresh.js';
import { type EngineContext, emptyStats, type ManagerStats } from './context.js';
import {
  type CredentialManagerOptions,
  engineContext,
  type ResolvedOptions,
  resolveOptions,
} from './options.js';
import { refreshCredential, refreshFlightKey } from './refresh.js';
import { logout, type LogoutOptions, type LogoutReport } from './logout.js';
import { RevocationRetrier } from './revocation-retrier.js';
import { SingleFlight } from './single-flight.js';
import { watchStore } from './store-watch.js';
import { type AccessToken, hasScopes, TokenCache } from './token-cache.js';

export interface GetTokenOptions {
  /** Whose credential. Default: the manager's subject. */
  subject?: string;
  /** Scopes the token must carry; a credential lacking them needs a new acquisition. */
  scopes?: readonly string[];
  /** Allow the interactive acquisition hook to run. Default true when a hook is configured. */
  interactive?: boolean;
  signal?: AbortSignal;
  /**
   * The token the server just rejected with 401. If the credential still holds it, it is
   * refreshed (once, single-flight) even though its expiry says it is valid.
   */
  rejectedToken?: string;
  /**
   * The Bearer challenge of the server's 401/403. With `error="insufficient_scope"` its
   * scopes are added to `scopes` (step-up), which skips refresh: a refresh cannot widen scope.
   */
  challenge?: BearerChallenge;
}

function withChallengeScopes(options: GetTokenOptions, challenge: BearerChallenge): GetTokenOptions {
  if (challenge.error !== 'insufficient_scope' || challenge.scope === undefined) return options;
  return { ...options, scopes: [...new Set([...(options.scopes ?? []), ...challenge.scope])] };
}

export interface ManagerEvents {
  /** Every lifecycle event any process appended to the store (after this manager started). */
  event: [LifecycleEvent];
  /** A problem no caller saw, e.g. a failed background refresh. */
  warning: [LatchkeyError];
}

/** Guard against pathological loops when joining a proactive refresh that could not run. */
const MAX_DEMAND_ROUNDS = 3;

/**
 * The lifecycle engine. `getAccessToken(server)` answers with a token valid right now or
 * throws a typed error saying what the user must do. See docs/architecture.md. The class
 * holds the public API and the ladder behind a cache miss; the cache (token-cache.ts),
 * proactive refresh (background-refresh.ts) and the store watch (store-watch.ts) are parts
 * it composes.
 */
export class CredentialManager extends EventEmitter<ManagerEvents> {
  readonly #o: ResolvedOptions;
  readonly #ctx: EngineContext;
  readonly #cache: TokenCache;
  readonly #background: BackgroundRefresh;
  readonly #canonical = new Map<string, string>();
  readonly #refreshes = new SingleFlight<StoredCredential>();
  readonly #logins = new SingleFlight<StoredCredential>();
  readonly #stats: ManagerStats = emptyStats();
  /**
   * Access tokens a server rejected (a 401 naming them) that nothing can refresh: not handed
   * out again by this process, even to a caller that does not name them (the login that
   * follows the 401). Only a new login replaces them. Bounded; a dead token is also gone
   * from the store once a login replaces it.
   */
  readonly #refused = new Set<string>();
  #unwatch: (() => void) | undefined;
  readonly #revocations: RevocationRetrier | undefined;
  #closed = false;

  constructor(options: CredentialManagerOptions) {
    super();
    this.#o = resolveOptions(options);
    this.#ctx = engineContext(this.#o, this.#stats, (error) => this.#warn(error));
    if (this.#o.retryRevocations) {
      this.#revocations = new RevocationRetrier({
        store: this.#o.store,
        owner: this.#ctx.holder.owner,
        fetch: this.#o.fetch,
        logger: this.#o.logger,
        requestTimeoutMs: this.#o.requestTimeoutMs,
        policy: this.#o.revocationRetry,
      });
      this.#revocations.wake();
    }
    this.#cache = new TokenCache({
      skewMs: this.#o.skewMs,
      maxEntries: this.#o.maxCachedCredentials,
      onEntry: (entry) => this.#background.schedule(entry, entry.proactiveAt),
      onDrop: (entry) => this.#background.unschedule(entry),
    });
    this.#background = new BackgroundRefresh({
      ctx: this.#ctx,
      refreshes: this.#refreshes,
      cache: this.#cache,
      timers: this.#o.proactiveRefresh === true,
      maxConcurrent: this.#o.maxBackgroundRefreshes,
      initialBackoffMs: this.#o.backoff.initialMs,
    });
    if (this.#o.watch) {
      this.#unwatch = watchStore({
        store: this.#o.store,
        cache: this.#cache,
        logger: this.#o.logger,
        pollMs: this.#o.watchPollMs,
        onEvent: (event) => this.emit('event', event),
        onRevocationPending: () => this.#revocations?.wake(),
        isClosed: () => this.#closed,
      });
    }
  }

  get store(): ResolvedOptions['store'] {
    return this.#o.store;
  }

  /** The signer for `DPoP` tokens: the store's key, read once per process (docs/dpop.md). */
  dpopSigner(): Promise<DPoPSigner> {
    return signerOf(this.#o.store);
  }

  /** The id of the newest lifecycle event in the store, or 0. */
  lastEventId(): Promise<number> {
    return this.#o.store.lastEventId();
  }

  /** Lifecycle events from the store (every process's), oldest first. */
  readEvents(query?: EventQuery): Promise<LifecycleEvent[]> {
    return this.#o.store.readEvents(query);
  }

  /** Counters about this process's work (refresh requests sent, adoptions, waits, evictions). */
  get stats(): Readonly<ManagerStats> {
    return { ...this.#stats, cacheEvictions: this.#cache.evictions };
  }

  /** What this manager holds in memory now: cached credentials, and those awaiting proactive refresh. */
  get cacheSize(): { cached: number; scheduled: number } {
    return { cached: this.#cache.size, scheduled: this.#background.scheduled };
  }

  /** A bearer token for `server`, valid right now. */
  async getAccessToken(server: string | URL, options?: GetTokenOptions): Promise<string> {
    return (await this.getToken(server, options)).token;
  }

  /** Like getAccessToken, with token type, expiry, scopes and the credential's identity. */
  async getToken(server: string | URL, options: GetTokenOptions = {}): Promise<AccessToken> {
    this.#assertOpen();
    if (options.challenge !== undefined) options = withChallengeScopes(options, options.challenge);
    const canonical = this.#canonicalize(server);
    const subject = options.subject ?? this.#o.subject;
    const entry = this.#cache.get(canonical, subject);
    if (
      entry !== undefined &&
      options.rejectedToken !== entry.token.token &&
      !this.#refused.has(entry.token.token) &&
      hasScopes(entry.token.scopes, options.scopes)
    ) {
      const now = Date.now();
      if (now < entry.mandatoryAt) {
        if (
          now >= entry.proactiveAt &&
          now >= entry.nextBackgroundAt &&
          this.#o.proactiveRefresh !== 'refresher'
        )
          this.#background.start(entry);
        return entry.token;
      }
    }
    return this.#slowPath(canonical, subject, options);
  }

  /**
   * Persist tokens obtained outside the manager (a login command, an embedder's own flow)
   * and tell every process. Returns the stored credential's public view.
   */
  async saveAcquired(server: string | URL, tokens: AcquiredTokens): Promise<AccessToken> {
    const canonical = this.#canonicalize(server);
    const subject = tokens.subject ?? this.#o.subject;
    const cred = await acquireCredential(
      this.#ctx,
      async () => tokens,
      // Tokens in hand replace any login still waiting for a browser or a device code.
      { server: canonical, subject, reason: 'no-credential', explicit: true, tokensInHand: true },
      this.#o.loginTimeoutMs,
    );
    return this.#cache.remember(cred).token;
  }

  /**
   * Run an interactive acquisition now, even when a valid credential exists (`latchkey
   * login`). Other processes waiting on the same server adopt its result.
   */
  async login(
    server: string | URL,
    options: Omit<GetTokenOptions, 'rejectedToken' | 'interactive'> = {},
  ): Promise<AccessToken> {
    this.#assertOpen();
    const canonical = this.#canonicalize(server);
    const subject = options.subject ?? this.#o.subject;
    const current = await this.#find(canonical, subject);
    // A credential the AS already refused is 'needs-login' (the login flow reads that as a
    // sign the AS may have been reset); any other is replaced because the person asked.
    const reason = current?.status.state === 'needs-login' ? 'needs-login' : 'requested';
    return this.#acquire(canonical, subject, options, reason, current, true);
  }

  /**
   * Log out of `server`: under the credential's lease, revoke its tokens at the AS (RFC 7009),
   * then delete it, so a refresh in flight anywhere can never write it back. See
   * LogoutOptions for best-effort versus strict.
   */
  async logout(
    server: string | URL,
    options: LogoutOptions & { subject?: string } = {},
  ): Promise<LogoutReport[]> {
    this.#assertOpen();
    const canonical = this.#canonicalize(server);
    const subject = options.subject ?? this.#o.subject;
    const creds = await this.#o.store.listCredentials({ server: canonical, subject });
    const reports: LogoutReport[] = [];
    for (const cred of creds) {
      this.#cache.forget(cred.key);
      reports.push(await logout(this.#ctx, cred.key, options));
    }
    return reports;
  }

  /**
   * Wait (up to `timeoutMs`, default 10 s) for the refreshes in flight to finish and store
   * their result. Call it before a process exits: with refresh-token rotation, a refresh the
   * AS has answered but this process has not stored spends the refresh token, and with it
   * the credential. A pending-revocation retry pass in flight is waited for too (it is
   * bounded by `revocationRetry.passBudgetMs`). Logins in flight are not waited for (a
   * browser may take minutes).
   */
  async settle(timeoutMs = 10_000): Promise<void> {
    const pass = this.#revocations?.inFlight();
    if (this.#refreshes.size === 0 && pass === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([Promise.all([this.#refreshes.settled(), pass]), deadline]);
    clearTimeout(timer);
  }

  /** Stop timers and the store watch. The store itself stays open (the caller owns it). */
  close(): void {
    this.#closed = true;
    this.#background.close();
    this.#revocations?.close();
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#cache.clear();
  }

  async #slowPath(server: string, subject: string, options: GetTokenOptions): Promise<AccessToken> {
    const cred = await this.#find(server, subject);
    let reason: AcquireReason = 'no-credential';
    if (cred !== undefined) {
      const access = cred.secrets.accessToken;
      const rejected = options.rejectedToken === access || this.#refused.has(access);
      const scoped = hasScopes(cred.scopes, options.scopes);
      reason = !scoped
        ? 'scope'
        : cred.status.state === 'needs-login'
          ? 'needs-login'
          : rejected
            ? 'token-rejected'
            : 'no-refresh-token';
      if (
        scoped &&
        !rejected &&
        cred.status.state !== 'needs-login' &&
        isUsable(cred, Date.now(), this.#o.skewMs)
      ) {
        return this.#cache.remember(cred).token;
      }
      if (rejected && cred.secrets.refreshToken === undefined) this.#refuse(access);
      if (scoped && cred.status.state !== 'needs-login' && cred.secrets.refreshToken !== undefined) {
        const fresh = await this.#refreshOnDemand(cred).catch((error: unknown) =>
          this.#permanentOrThrow(error),
        );
        if (fresh !== undefined) return this.#cache.remember(fresh).token;
        reason = 'needs-login';
      }
    }
    return this.#acquire(server, subject, options, reason, cred);
  }

  #refuse(token: string): void {
    if (this.#refused.size >= 256) this.#refused.clear();
    this.#refused.add(token);
  }

  async #refreshOnDemand(seen: StoredCredential): Promise<StoredCredential> {
    this.#stats.callersWaitedOnRefresh++;
    let cred = seen;
    for (let round = 0; round < MAX_DEMAND_ROUNDS; round++) {
      const base = cred;
      const flight = this.#refreshes.current(refreshFlightKey(base));
      cred = await (flight ??
        this.#refreshes.run(refreshFlightKey(base), () => refreshCredential(this.#ctx, base, true)));
      // A joined proactive flight may have deferred to another process; then look again.
      if (cred.generation !== seen.generation || flight === undefined) return cred;
    }
    return cred;
  }

  /** LOGIN_REQUIRED falls through to acquisition; anything else reaches the caller. */
  #permanentOrThrow(error: unknown): undefined {
    if (isLatchkeyError(error) && error.code === ErrorCode.LOGIN_REQUIRED) return undefined;
    throw error;
  }

  async #acquire(
    server: string,
    subject: string,
    options: GetTokenOptions,
    reason: AcquireReason,
    current?: StoredCredential,
    explicit = false,
  ): Promise<AccessToken> {
    const hook = this.#o.acquire;
    if (hook === undefined || options.interactive === false)
      throw loginRequired(server, describeReason(reason));
    const cred = await this.#logins.run(`login\u0000${server}\u0000${subject}`, () =>
      acquireCredential(
        this.#ctx,
        hook,
        {
          server,
          subject,
          reason,
          explicit,
          ...(options.scopes ? { scopes: options.scopes } : {}),
          ...(current === undefined ? {} : { grantedScopes: current.scopes, issuer: current.key.issuer }),
          ...(options.challenge === undefined ? {} : { challenge: options.challenge }),
        },
        this.#o.loginTimeoutMs,
        options.signal,
      ),
    );
    return this.#cache.remember(cred).token;
  }

  /** The credential for (server, subject): a healthy one if any, else the newest. */
  async #find(server: string, subject: string): Promise<StoredCredential | undefined> {
    const list = await this.#o.store.listCredentials({ server, subject });
    const healthy = list.filter((c) => c.status.state !== 'needs-login');
    const pool = healthy.length > 0 ? healthy : list;
    return pool.sort((a, b) => b.updatedAt - a.updatedAt)[0];
  }

  #warn(error: LatchkeyError): void {
    this.#o.logger.debug(error.message, { code: error.code, server: error.server });
    if (this.listenerCount('warning') > 0) this.emit('warning', error);
  }

  #canonicalize(server: string | URL): string {
    const text = typeof server === 'string' ? server : server.href;
    let canonical = this.#canonical.get(text);
    if (canonical === undefined) {
      canonical = canonicalServer(text);
      if (this.#canonical.size > 1000) this.#canonical.clear();
      this.#canonical.set(text, canonical);
    }
    return canonical;
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'this credential manager was closed.', {
        retryable: false,
        next: { kind: 'configure', detail: 'create a new CredentialManager' },
      });
    }
  }
}
