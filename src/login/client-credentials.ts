import type * as oauth from 'oauth4webapi';

import { ErrorCode, LatchkeyError } from '../errors.js';
import type { AcquiredTokens, AcquireHook } from '../lifecycle/acquire.js';
import { clientContextForConfig, clientCredentialsGrant } from '../oauth/client-credentials.js';
import { dpopKeysOf, wantsDPoP } from '../oauth/dpop.js';
import { ensureRegistration } from '../oauth/registration.js';
import type { ClientConfig } from '../oauth/types.js';
import type { CredentialStore } from '../store/contract.js';
import { contextFor, type FlowResult, type FlowRun, registerFor } from './strategy.js';

export interface ClientCredentialsHookOptions {
  /** Where the registration for the AS issuer is kept (AUTH-27). */
  store: CredentialStore;
  /** AS metadata, or how to find it for a server (normally discovery). */
  authorizationServer:
    oauth.AuthorizationServer | ((server: string, signal: AbortSignal) => Promise<oauth.AuthorizationServer>);
  /** A confidential client: `clientId` plus `clientSecret` or `privateKey`. */
  config: ClientConfig;
  /** Scope when the caller asks for none. Default: omitted. */
  scope?: string;
  /** Send RFC 8707 `resource` (the server URI). Default true. */
  sendResource?: boolean;
  /** Timeout of the token request. Default 30 000 ms. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/**
 * An AcquireHook that gets tokens with the client credentials grant, for machine-to-machine
 * deployments: the manager calls it whenever there is no usable credential (client
 * credentials responses normally carry no refresh token, so that is at every expiry).
 */
export function clientCredentialsHook(options: ClientCredentialsHookOptions): AcquireHook {
  const { config } = options;
  if (
    config.clientId === undefined ||
    (config.clientSecret === undefined && config.privateKey === undefined)
  ) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      'the client credentials grant needs a confidential client: a client id with a client secret or a private key.',
      {
        retryable: false,
        next: { kind: 'configure', detail: 'configure clientId and clientSecret (or privateKey)' },
      },
    );
  }
  return async (request): Promise<AcquiredTokens> => {
    const as =
      typeof options.authorizationServer === 'function'
        ? await options.authorizationServer(request.server, request.signal)
        : options.authorizationServer;
    const registration = await ensureRegistration({
      store: options.store,
      server: request.server,
      as,
      config,
      redirectUris: [],
      grantTypes: ['client_credentials'],
      fetch: options.fetch,
      signal: request.signal,
    });
    const ctx = await clientContextForConfig(as, registration, config, {
      fetch: options.fetch,
      // No discovery here: the server's 401 (request.challenge) says whether it takes DPoP.
      dpopKeys: wantsDPoP(config, request.challenge) ? dpopKeysOf(options.store) : undefined,
    });
    const scope =
      request.scopes !== undefined && request.scopes.length > 0 ? request.scopes.join(' ') : options.scope;
    const result = await clientCredentialsGrant(ctx, {
      resource: options.sendResource === false ? undefined : request.server,
      scope,
      timeoutMs: options.timeoutMs ?? 30_000,
      signal: request.signal,
      server: request.server,
    });
    return {
      issuer: as.issuer,
      clientId: registration.clientId,
      response: result.response,
      requestedAt: result.requestedAt,
      ...(scope === undefined ? {} : { requestedScopes: scope.split(' ').filter((s) => s !== '') }),
      owned: true,
    };
  };
}

/** The client credentials flow as a login strategy: no user, so nothing is shown. */
export async function clientCredentialsLogin(run: FlowRun): Promise<FlowResult> {
  const registration = await registerFor(run, { redirectUris: [], grantTypes: ['client_credentials'] });
  const ctx = await contextFor(run, registration);
  const grant = await clientCredentialsGrant(ctx, {
    resource: run.resource,
    scope: run.scope,
    timeoutMs: run.requestTimeoutMs,
    signal: run.request.signal,
    server: run.request.server,
  });
  return { clientId: registration.clientId, grant, resource: run.resource };
}
