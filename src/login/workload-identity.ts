import { ErrorCode, LatchkeyError } from '../errors.js';
import { buildContext } from '../oauth/client-context.js';
import { dpopKeysOf } from '../oauth/dpop.js';
import { jwtBearerGrant, readWorkloadToken } from '../oauth/jwt-bearer.js';
import type { Registration } from '../store/contract.js';
import type { FlowResult, FlowRun } from './strategy.js';

/**
 * Workload identity federation as a login strategy (src/oauth/jwt-bearer.ts): no user and no
 * secret. The client is the configured client id, public (`none`), and nothing is registered
 * or stored for it: the AS knows the workload by its JWT. The token file is read on every
 * login, which is also how an expired access token is replaced (the grant issues no refresh
 * token), so a platform's rotation of the file is followed.
 */
export async function workloadIdentityLogin(run: FlowRun): Promise<FlowResult> {
  const { server } = run.request;
  const client = run.options.client ?? {};
  const file = client.workloadTokenFile;
  if (file === undefined || client.clientId === undefined) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      'workload identity needs a client id and the path of the workload token file.',
      {
        server,
        retryable: false,
        next: { kind: 'configure', detail: 'configure the client id and the workload token file' },
      },
    );
  }
  const assertion = await readWorkloadToken(file, server);
  const registration: Registration = {
    issuer: run.as.issuer,
    clientId: client.clientId,
    tokenEndpointAuthMethod: 'none',
    method: 'pre-registered',
    registeredAt: Date.now(),
  };
  const ctx = buildContext(run.as, registration, {
    fetch: run.options.fetch,
    server,
    warn: (text) => run.notify(`warning: ${text}\n`),
    dpopKeys: run.dpop ? dpopKeysOf(run.options.store) : undefined,
  });
  const grant = await jwtBearerGrant(ctx, {
    assertion,
    resource: run.resource,
    scope: run.scope,
    timeoutMs: run.requestTimeoutMs,
    signal: run.request.signal,
    server,
  });
  return { clientId: registration.clientId, grant, resource: run.resource };
}
