import type { AccessToken } from '../../lifecycle/token-cache.js';
import type { CredentialStore } from '../../store/contract.js';
import type { CliIO } from '../io.js';
import type { CredentialManager } from '../../lifecycle/manager.js';
import { createLoginHook, type LoginOptions, storedIdpSession } from '../login-hook.js';
import { withManager } from '../session.js';
import { createSpinner } from '../spinner.js';

export interface LoginCommandOptions {
  server: string;
  scopes?: string[] | undefined;
  /** Send the RFC 8707 resource parameter (off for Microsoft Entra v2). */
  sendResource: boolean;
  /** The login hook's settings, minus the store (opened here) and `notify` (the spinner's). */
  loginOptions: Omit<LoginOptions, 'store' | 'notify'>;
}

/** `latchkey login <server>`: always runs a login, replacing any pending one, then reports it. */
export async function runLogin(io: CliIO, options: LoginCommandOptions): Promise<void> {
  const spinner = createSpinner(io);
  // Each prompt (browser URL, device code) is followed by a wait for the user.
  const notify = (text: string): void => {
    spinner.print(text);
    spinner.start(
      /enter the code/i.test(text)
        ? 'Waiting for you to approve the code on the other device...'
        : 'Waiting for you to finish signing in in the browser...',
    );
  };
  let running: CredentialManager | undefined;
  try {
    await withManager(
      io,
      (store) => ({
        sendResource: options.sendResource,
        acquire: createLoginHook({
          // A `login --idp` session authorizes servers whose AS takes ID-JAGs, with no browser.
          idp: storedIdpSession(() => running),
          ...options.loginOptions,
          store,
          notify,
        }),
      }),
      async (manager, store) => {
        running = manager;
        const done = await manager
          .login(options.server, options.scopes === undefined ? {} : { scopes: options.scopes })
          .finally(() => spinner.stop());
        await login(done, store, io, isMachineFlow(options.loginOptions.flow));
      },
      'write',
    );
  } finally {
    spinner.stop();
  }
}

/**
 * After a login (run even when a valid credential exists), say which server and account were
 * authorized, where the credential lives, and anything that will bite later: no refresh
 * token means another login when the access token expires. Not for the machine flows
 * (`machine`): their grants normally issue none (RFC 6749 §4.4.3), and the next token comes
 * from the same grant, with no one to ask.
 */
export async function login(
  token: AccessToken,
  store: CredentialStore,
  io: CliIO,
  machine = false,
): Promise<void> {
  const expiry =
    token.expiresAt === undefined ? 'no expiry given' : `expires ${new Date(token.expiresAt).toISOString()}`;
  const scopes = token.scopes.length === 0 ? '' : `, scopes: ${token.scopes.join(' ')}`;
  const [cred] = await store.listCredentials({
    server: token.server,
    issuer: token.issuer,
    subject: token.subject,
  });
  const account = cred?.account === undefined ? '' : ` as ${cred.account}`;
  const what = cred?.idpSession === true ? 'the identity provider' : '';
  const via = cred?.idp === undefined ? '' : ` through the identity provider ${cred.idp} (ID-JAG)`;
  io.err(
    `Logged in to ${what === '' ? '' : `${what} `}${token.server}${account} at ${token.issuer}${via} (${expiry}${scopes}).\n`,
  );
  io.err(`Credential stored in ${store.security.location} (key: ${store.security.keySource}).\n`);
  if (!machine && cred !== undefined && cred.secrets.refreshToken === undefined) {
    io.err(
      `warning: ${token.issuer} issued no refresh token, so you will have to log in again when the access ` +
        'token expires. The authorization server may not allow the refresh_token grant for this client, or may ' +
        'want the offline_access scope (try `--offline-access`).\n',
    );
  }
}

function isMachineFlow(flow: LoginOptions['flow']): boolean {
  return flow === 'client-credentials' || flow === 'workload-identity';
}
