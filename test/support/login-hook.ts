import type { AcquireHook } from '../../src/lifecycle/acquire.js';
import { obtainTokens } from '../harness/index.js';

/**
 * An acquisition hook that logs in through the test AS's real login and consent pages (the
 * headless driver stands in for the user's browser). Counts its runs so tests can tell an
 * interactive login from a refresh.
 */
export function loginHook(as: { issuer: string; clientId: string }): AcquireHook & { runs: number } {
  const hook = Object.assign(
    async (request: Parameters<AcquireHook>[0]) => {
      hook.runs++;
      const tokens = await obtainTokens(as, { resource: request.server, subject: request.subject });
      return {
        issuer: tokens.issuer,
        clientId: tokens.clientId,
        requestedAt: tokens.requestedAt,
        response: tokens.response,
      };
    },
    { runs: 0 },
  );
  return hook;
}
