import { deviceAuthorization } from './device-authorization.js';
import { stderrDevicePrompt } from './device-prompt.js';
import { contextFor, type FlowResult, type FlowRun, registerFor, renewsPublicClient } from './strategy.js';

/** The device flow: the prompt goes to `notify` and, for a proxy's host, to `onDevicePrompt`. */
export async function deviceLogin(run: FlowRun): Promise<FlowResult> {
  const { options, request } = run;
  const registration = await registerFor(run, {
    redirectUris: [],
    grantTypes: ['urn:ietf:params:oauth:grant-type:device_code'],
    renewPublicClient: renewsPublicClient(run),
  });
  const ctx = await contextFor(run, registration);
  const show = stderrDevicePrompt({ server: request.server, write: run.notify });
  const grant = await deviceAuthorization({
    ctx,
    resource: run.resource,
    scope: run.scope,
    server: request.server,
    signal: request.signal,
    requestTimeoutMs: run.requestTimeoutMs,
    prompt: (prompt) => {
      show(prompt);
      options.onDevicePrompt?.(prompt, request.server);
    },
  });
  return { clientId: registration.clientId, grant, resource: run.resource };
}
