/**
 * latchkey as the `AuthProvider` of the MCP SDK 2.x client packages
 * (`@modelcontextprotocol/client`). 2.x transports ask `token()` before every request and
 * call `onUnauthorized()` on a 401, then resend once; the SDK's own OAuth code is not
 * involved, so every refresh is the manager's: once per credential across processes.
 *
 * The shape is declared here rather than imported, so latchkey does not depend on the 2.x
 * packages; it matches their `AuthProvider` (examples/sdk2-client.ts type-checks that).
 */
import { canonicalServer } from '../credential/key.js';
import { bearerOnly } from './bearer-only.js';
import type { TokenSource } from './credentials.js';
import { bearerChallenge } from '../oauth/www-authenticate.js';

export interface Sdk2AuthProvider {
  token(): Promise<string | undefined>;
  onUnauthorized(context: { response: Response }): Promise<void>;
}

export interface Sdk2AuthProviderOptions {
  /** Where tokens come from: a CredentialManager, or anything shaped like one. */
  manager: TokenSource;
  /** Whose credential. Default: the manager's subject. */
  subject?: string;
  /** May a login start when no credential is usable? Default true. */
  interactive?: boolean;
}

export function createSdk2AuthProvider(
  server: string | URL,
  options: Sdk2AuthProviderOptions,
): Sdk2AuthProvider {
  const url = canonicalServer(String(server));
  const base = {
    interactive: options.interactive ?? true,
    ...(options.subject === undefined ? {} : { subject: options.subject }),
  };
  let handedOut: string | undefined;
  return {
    async token() {
      handedOut = bearerOnly(await options.manager.getToken(url, base)).token;
      return handedOut;
    },
    async onUnauthorized({ response }) {
      const challenge = bearerChallenge(response);
      // The rejected token is refreshed even though its expiry says it is valid; a 403-style
      // insufficient_scope challenge on a 401 widens the scopes (step-up).
      const token = await options.manager.getToken(url, {
        ...base,
        ...(handedOut === undefined ? {} : { rejectedToken: handedOut }),
        ...(challenge === undefined ? {} : { challenge }),
      });
      handedOut = bearerOnly(token).token;
    },
  };
}
