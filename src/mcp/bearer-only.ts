/**
 * The MCP SDKs' auth providers present every token as `Bearer`. A DPoP-bound token sent so is
 * refused by a DPoP-aware server and leaks a usable bound token to a server that is not
 * (RFC 9449 §7.2), so the providers hand out bearer tokens only; createAuthFetch presents a
 * DPoP token with its proof (docs/dpop.md).
 */
import { ErrorCode, LatchkeyError } from '../errors.js';
import type { AccessToken } from '../lifecycle/token-cache.js';

/** `token`, when it is a bearer token; a `configure` error naming the way out otherwise. */
export function bearerOnly(token: AccessToken): AccessToken {
  if (token.tokenType !== 'DPoP') return token;
  throw new LatchkeyError(
    ErrorCode.INVALID_INPUT,
    `the token for ${token.server} is DPoP-bound, which the SDK's auth provider cannot present.`,
    {
      retryable: false,
      server: token.server,
      next: { kind: 'configure', detail: "pass latchkey's createAuthFetch as the transport's fetch instead" },
    },
  );
}
