// The harness AS's pre-registered public client (no secret) as latchkey's client context, for
// the tests that call the OAuth layer directly instead of going through a login.
import type * as oauth from 'oauth4webapi';

import { buildContext, type ClientContext } from '../../src/oauth/client-context.js';

/** `metadata`: the AS's discovered metadata; `issuer` defaults to the one it names. */
export function publicClientContext(
  metadata: oauth.AuthorizationServer,
  clientId: string,
  issuer = metadata.issuer,
): ClientContext {
  return buildContext(
    metadata,
    { issuer, clientId, tokenEndpointAuthMethod: 'none', method: 'pre-registered', registeredAt: 0 },
    {},
  );
}
