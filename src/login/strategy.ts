import type * as oauth from 'oauth4webapi';

import type { AcquireRequest } from '../lifecycle/acquire.js';
import type { ClientContext } from '../oauth/client-context.js';
import { clientContextForConfig } from '../oauth/client-credentials.js';
import { dpopKeysOf } from '../oauth/dpop.js';
import type { GrantResult } from '../oauth/grants.js';
import { ensureRegistration, type EnsureRegistrationOptions } from '../oauth/registration.js';
import type { Registration } from '../store/contract.js';
import type { LoginOptions } from './options.js';

/**
 * One login, after discovery and scope selection: everything a flow needs, whichever flow
 * it is. The strategies (browser, device, client credentials) differ only in how they get a
 * client registered and the grant run.
 */
export interface FlowRun {
  readonly options: LoginOptions;
  readonly request: AcquireRequest;
  readonly as: oauth.AuthorizationServer;
  /** Space-separated scopes to ask for, if any. */
  readonly scope: string | undefined;
  /** The RFC 8707 resource to send; undefined for IdPs that reject it. */
  readonly resource: string | undefined;
  readonly requestTimeoutMs: number;
  /** Bind the tokens to the store's DPoP key (oauth/dpop.ts `wantsDPoP`), if the AS offers it. */
  readonly dpop: boolean;
  /** Where the login's human-facing lines go (stderr unless configured). */
  readonly notify: (text: string) => void;
}

export interface FlowResult {
  clientId: string;
  grant: GrantResult;
  resource: string | undefined;
  /** The enterprise IdP session the grant was derived from, if any. */
  idp?: string;
}

/** A login flow: registers the client it needs and runs its grant. */
export type LoginStrategy = (run: FlowRun) => Promise<FlowResult>;

type RegistrationNeeds = Pick<EnsureRegistrationOptions, 'redirectUris' | 'grantTypes' | 'renewPublicClient'>;

/** The client registration for this AS, registered for what the flow needs if there is none yet. */
export function registerFor(run: FlowRun, needs: RegistrationNeeds): Promise<Registration> {
  return ensureRegistration({
    store: run.options.store,
    server: run.request.server,
    as: run.as,
    config: run.options.client ?? {},
    fetch: run.options.fetch,
    signal: run.request.signal,
    ...needs,
  });
}

/** The client context a grant runs with; warnings about the AS's answers go to `notify`. */
export function contextFor(run: FlowRun, registration: Registration): Promise<ClientContext> {
  return clientContextForConfig(run.as, registration, run.options.client ?? {}, {
    fetch: run.options.fetch,
    warn: (text) => run.notify(`warning: ${text}\n`),
    dpopKeys: run.dpop ? dpopKeysOf(run.options.store) : undefined,
  });
}

/** After a refused grant, a public client the AS may have forgotten is registered anew. */
export function renewsPublicClient(run: FlowRun): boolean {
  return run.request.reason === 'needs-login';
}
