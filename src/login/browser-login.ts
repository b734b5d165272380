import { type CredentialStore, EventType } from '../store/contract.js';
import { recentEvents } from '../store/recent-events.js';
import { type AuthorizationCodeOptions, authorizationCodeFlow } from './authorization-code.js';
import { openSystemBrowser } from './browser.js';
import { type RedirectReceiver, startRedirectReceiver } from './redirect-receiver.js';
import { contextFor, type FlowResult, type FlowRun, registerFor, renewsPublicClient } from './strategy.js';

/**
 * The browser flow (authorization code + PKCE): the loopback receiver is started first,
 * since its redirect URI is part of the registration.
 */
export async function browserLogin(run: FlowRun): Promise<FlowResult> {
  const receiver = await startReceiver(run);
  try {
    const registeringFrom = Date.now();
    const registration = await registerFor(run, {
      redirectUris: [receiver.redirectUri],
      grantTypes: ['authorization_code'],
      renewPublicClient: renewsPublicClient(run),
    });
    // The preflight looks for a client the AS has forgotten; one registered a moment ago is
    // known, and the extra authorization request would only be noise at the AS.
    const fresh = registration.method === 'dynamic' && registration.registeredAt >= registeringFrom;
    const ctx = await contextFor(run, registration);
    let waiting = true; // an opener that fails after the login ended has nothing to say
    const grant = await authorizationCodeFlow(
      codeFlowOptions(run, { ctx, receiver, preflight: !fresh }, () => waiting),
    ).finally(() => (waiting = false));
    return { clientId: registration.clientId, grant, resource: run.resource };
  } finally {
    receiver.close();
  }
}

function startReceiver({ options, request }: FlowRun): Promise<RedirectReceiver> {
  return startRedirectReceiver({
    server: request.server,
    signal: request.signal,
    // The replaced login's process lets go of the stable port within a fraction of a second;
    // taking it lets its abandoned tab still reach a listener that can say what happened.
    ...(request.replacing === true ? { portWaitMs: 2_000 } : {}),
    ...(options.redirectPort === undefined ? {} : { port: options.redirectPort }),
    ...(options.redirectHost === undefined ? {} : { host: options.redirectHost }),
    ...(options.redirectPath === undefined ? {} : { path: options.redirectPath }),
  });
}

/** The authorization code flow for this login; what it tells the user goes to `notify`. */
function codeFlowOptions(
  run: FlowRun,
  flow: Pick<AuthorizationCodeOptions, 'ctx' | 'receiver' | 'preflight'>,
  waiting: () => boolean,
): AuthorizationCodeOptions {
  const { options, request, notify } = run;
  return {
    ...flow,
    server: request.server,
    resource: run.resource,
    scope: run.scope,
    openBrowser: options.openBrowser ?? openSystemBrowser,
    onAuthorizationUrl: (url) =>
      notify(
        `Opening the browser to sign in to ${request.server}.\nIf it does not open, visit:\n\n  ${url}\n\n`,
      ),
    onBrowserUnavailable: (url, error) => {
      if (!waiting()) return;
      const why = error instanceof Error ? error.message : 'could not start a browser.';
      notify(`latchkey: ${why} Open this URL yourself to sign in to ${request.server}:\n\n  ${url}\n\n`);
      options.onBrowserUnavailable?.(url, request.server);
    },
    timeoutMs: options.timeoutMs ?? 300_000,
    requestTimeoutMs: run.requestTimeoutMs,
    signal: request.signal,
    ...(request.attempt === undefined ? {} : { attempt: request.attempt }),
    isReplacedAttempt: (attempt) => wasLoginAttempt(options.store, request.server, attempt),
    onIgnoredResponse: (reason, count) =>
      notify(
        reason === 'replaced'
          ? `A sign-in tab of an earlier, replaced login to ${request.server} came back; it was ignored.\n`
          : `Ignored a sign-in response for ${request.server} that does not belong to this login (${count} so far).\n`,
      ),
    fetch: options.fetch,
    ...(options.quirks?.extraAuthorizationParams === undefined
      ? {}
      : { extraParams: options.quirks.extraAuthorizationParams }),
  };
}

/** Events scanned for an earlier login's attempt id; logins are rare, a few hundred is days. */
const ATTEMPT_SCAN = 1000;

/** Whether `attempt` is an earlier login of `server` recorded in the store (so it was replaced or ended). */
async function wasLoginAttempt(store: CredentialStore, server: string, attempt: string): Promise<boolean> {
  const events = await recentEvents(store, ATTEMPT_SCAN, server);
  return events.some((e) => e.type === EventType.LOGIN_STARTED && e.detail?.['attempt'] === attempt);
}
