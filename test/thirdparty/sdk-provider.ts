/**
 * An `OAuthServerProvider` for the MCP SDK's own `mcpAuthRouter`: the AS a developer gets by
 * following the SDK's documentation, with the behaviour a strict production AS has.
 *
 * - clients: in memory, dynamic registration (the SDK's register handler assigns the ids);
 *   `forgetClients()` empties the store as a restart of an in-memory AS would;
 * - authorization code + PKCE (S256, checked by the SDK's token handler), auto-approved:
 *   the browser is redirected straight back with the code;
 * - access tokens with a settable TTL (`accessTokenTtl`, seconds) so tests expire them
 *   instead of sleeping through them;
 * - refresh tokens that rotate and are single-use: presenting a used one is `invalid_grant`
 *   and revokes the whole grant (RFC 9700 4.14.2 reuse detection);
 * - RFC 7009 revocation that really revokes (the grant's access and refresh tokens).
 *
 * `counters` records what the AS saw (kind → outcome), as the harness AS does.
 */
import { randomBytes, randomUUID } from 'node:crypto';

import type { Response } from 'express';
import type { OAuthRegisteredClientsStore } from '@modelcontextprotocol/sdk/server/auth/clients.js';
import {
  InvalidClientError,
  InvalidGrantError,
  InvalidTokenError,
} from '@modelcontextprotocol/sdk/server/auth/errors.js';
import type {
  AuthorizationParams,
  OAuthServerProvider,
} from '@modelcontextprotocol/sdk/server/auth/provider.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type {
  OAuthClientInformationFull,
  OAuthTokenRevocationRequest,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';

import { Counters } from '../../src/demo/counters.js';

/** One authorization: the tokens of a login and of every refresh that followed it. */
interface Grant {
  id: string;
  clientId: string;
  scopes: string[];
  resource?: URL;
  revoked: boolean;
}

interface PendingCode {
  clientId: string;
  challenge: string;
  redirectUri: string;
  scopes: string[];
  resource?: URL;
  expiresAt: number;
}

interface IssuedToken {
  grant: Grant;
  expiresAt: number;
  /** Refresh tokens only: spent by a refresh (single use). */
  used: boolean;
}

/** The one user this AS knows (it auto-approves). */
export const SUBJECT = 'sdk-user';

const token = (): string => randomBytes(24).toString('base64url');

class MemoryClients implements OAuthRegisteredClientsStore {
  readonly clients = new Map<string, OAuthClientInformationFull>();

  getClient(clientId: string): OAuthClientInformationFull | undefined {
    return this.clients.get(clientId);
  }

  registerClient(client: OAuthClientInformationFull): OAuthClientInformationFull {
    this.clients.set(client.client_id, client);
    return client;
  }
}

export class RotatingProvider implements OAuthServerProvider {
  readonly counters = new Counters();
  /** Access-token lifetime in seconds for tokens issued from now on. Default 300. */
  accessTokenTtl = 300;
  readonly #clients = new MemoryClients();
  readonly #codes = new Map<string, PendingCode>();
  readonly #access = new Map<string, IssuedToken>();
  readonly #refresh = new Map<string, IssuedToken>();

  get clientsStore(): OAuthRegisteredClientsStore {
    return this.#clients;
  }

  /** Drop every registered client, as an in-memory AS does on restart. Tokens stay. */
  forgetClients(): void {
    this.#clients.clients.clear();
  }

  get registeredClients(): number {
    return this.#clients.clients.size;
  }

  authorize(client: OAuthClientInformationFull, params: AuthorizationParams, res: Response): Promise<void> {
    const code = token();
    this.#codes.set(code, {
      clientId: client.client_id,
      challenge: params.codeChallenge,
      redirectUri: params.redirectUri,
      scopes: params.scopes ?? [],
      ...(params.resource === undefined ? {} : { resource: params.resource }),
      expiresAt: Date.now() + 60_000,
    });
    const target = new URL(params.redirectUri);
    target.searchParams.set('code', code);
    if (params.state !== undefined) target.searchParams.set('state', params.state);
    this.counters.record('authorize', 'ok');
    res.redirect(302, target.href);
    return Promise.resolve();
  }

  challengeForAuthorizationCode(client: OAuthClientInformationFull, code: string): Promise<string> {
    const pending = this.#codes.get(code);
    if (pending === undefined || pending.clientId !== client.client_id) {
      throw new InvalidGrantError('unknown authorization code');
    }
    return Promise.resolve(pending.challenge);
  }

  exchangeAuthorizationCode(
    client: OAuthClientInformationFull,
    code: string,
    _verifier?: string,
    redirectUri?: string,
  ): Promise<OAuthTokens> {
    const pending = this.#codes.get(code);
    this.#codes.delete(code); // single use, whatever the outcome
    if (pending === undefined || pending.clientId !== client.client_id || pending.expiresAt < Date.now()) {
      this.counters.record('authorization_code', 'invalid_grant');
      throw new InvalidGrantError('unknown, expired or foreign authorization code');
    }
    if (redirectUri !== undefined && redirectUri !== pending.redirectUri) {
      this.counters.record('authorization_code', 'invalid_grant');
      throw new InvalidGrantError('redirect_uri does not match the authorization request');
    }
    const grant: Grant = {
      id: randomUUID(),
      clientId: client.client_id,
      scopes: pending.scopes,
      ...(pending.resource === undefined ? {} : { resource: pending.resource }),
      revoked: false,
    };
    this.counters.record('authorization_code', 'ok');
    return Promise.resolve(this.#issue(grant));
  }

  exchangeRefreshToken(client: OAuthClientInformationFull, refreshToken: string): Promise<OAuthTokens> {
    const issued = this.#refresh.get(refreshToken);
    if (issued === undefined || issued.grant.clientId !== client.client_id) {
      this.counters.record('refresh_token', 'invalid_grant');
      throw new InvalidGrantError('unknown refresh token');
    }
    if (issued.used || issued.grant.revoked) {
      // A spent refresh token came back: someone holds a copy. Kill the grant.
      issued.grant.revoked = true;
      this.counters.record('refresh_token', 'invalid_grant');
      throw new InvalidGrantError('refresh token already used or revoked');
    }
    issued.used = true;
    this.counters.record('refresh_token', 'ok');
    return Promise.resolve(this.#issue(issued.grant));
  }

  verifyAccessToken(accessToken: string): Promise<AuthInfo> {
    const issued = this.#access.get(accessToken);
    if (issued === undefined || issued.grant.revoked || issued.expiresAt <= Date.now()) {
      this.counters.record('verify', 'invalid_token');
      throw new InvalidTokenError('unknown, expired or revoked access token');
    }
    this.counters.record('verify', 'ok');
    return Promise.resolve({
      token: accessToken,
      clientId: issued.grant.clientId,
      scopes: issued.grant.scopes,
      expiresAt: Math.floor(issued.expiresAt / 1000),
      // One auto-approved user: the harness `whoami` tool reports `extra.sub`.
      extra: { sub: SUBJECT },
      ...(issued.grant.resource === undefined ? {} : { resource: issued.grant.resource }),
    });
  }

  revokeToken(client: OAuthClientInformationFull, request: OAuthTokenRevocationRequest): Promise<void> {
    const issued = this.#refresh.get(request.token) ?? this.#access.get(request.token);
    if (issued === undefined || issued.grant.clientId !== client.client_id) {
      // RFC 7009 2.2: an unknown token is not an error.
      this.counters.record('revocation', 'unknown');
      return Promise.resolve();
    }
    issued.grant.revoked = true;
    this.counters.record('revocation', 'ok');
    return Promise.resolve();
  }

  /** Whether this access token would be accepted now (for assertions). */
  accessTokenActive(accessToken: string): boolean {
    const issued = this.#access.get(accessToken);
    return issued !== undefined && !issued.grant.revoked && issued.expiresAt > Date.now();
  }

  /** Expire every access token issued so far, as the passing of their lifetime would. */
  expireAccessTokens(): void {
    for (const issued of this.#access.values()) issued.expiresAt = Date.now() - 1;
  }

  #issue(grant: Grant): OAuthTokens {
    if (!this.#clients.clients.has(grant.clientId)) throw new InvalidClientError('client is not registered');
    const access = token();
    const refresh = token();
    this.#access.set(access, { grant, expiresAt: Date.now() + this.accessTokenTtl * 1000, used: false });
    this.#refresh.set(refresh, { grant, expiresAt: Number.POSITIVE_INFINITY, used: false });
    return {
      access_token: access,
      token_type: 'Bearer',
      expires_in: this.accessTokenTtl,
      refresh_token: refresh,
      ...(grant.scopes.length > 0 ? { scope: grant.scopes.join(' ') } : {}),
    };
  }
}
