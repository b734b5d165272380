/**
 * What a host hears when its user has no usable credential for the upstream: a link the
 * person can open to connect, in the form the host understands.
 *
 * - A 2025-11-25 host that declared URL elicitation (`capabilities.elicitation.url`) gets
 *   the URL-elicitation-required error, -32042, and may retry the request once the user
 *   is done.
 * - A 2026-07-28 host that declared it gets an `input_required` result instead (-32042 is
 *   reserved there), for the methods that may answer so (tools/call, prompts/get,
 *   resources/read).
 * - Any other host gets a plain JSON-RPC error whose message holds the same link.
 */
import { randomBytes } from 'node:crypto';

import type { JsonRpcId, JsonRpcResponse } from '../mcp/jsonrpc.js';
import { RpcErrorCode } from '../mcp/jsonrpc.js';
import type { ServeContext } from './context.js';

/** MCP 2025-11-25 URLElicitationRequiredError. */
export const URL_ELICITATION_REQUIRED = -32042;

/** Methods a 2026-07-28 server may answer with an input-required result. */
const MULTI_ROUND = new Set(['tools/call', 'prompts/get', 'resources/read']);

export interface HostTraits {
  /** The host declared URL-mode elicitation. */
  urlElicitation: boolean;
  /** The request is 2026-07-28 (sessionless; its protocol version rides in `_meta`). */
  modern: boolean;
}

/**
 * Where a person connects `upstream`: the portal page of this gateway, which signs the
 * person in and starts the connect flow for them. The link carries no secret and no
 * subject; the page learns who the person is from its own sign-in, as URL elicitation
 * requires (the link may be opened by someone else).
 */
export function portalHint(ctx: Pick<ServeContext, 'publicUrl'>, upstream: string): string {
  return `${ctx.publicUrl}/?connect=${encodeURIComponent(upstream)}`;
}

export function loginRequiredAnswer(
  id: JsonRpcId,
  method: string,
  host: HostTraits,
  where: { upstream: string; url: string },
): JsonRpcResponse {
  const message = `Connect your account for ${where.upstream} to continue: open ${where.url}`;
  if (host.urlElicitation && host.modern && MULTI_ROUND.has(method)) {
    return {
      jsonrpc: '2.0',
      id,
      result: {
        resultType: 'input_required',
        inputRequests: {
          'latchkey-connect': {
            method: 'elicitation/create',
            params: { mode: 'url', message, url: where.url },
          },
        },
      },
    };
  }
  if (host.urlElicitation && !host.modern) {
    return {
      jsonrpc: '2.0',
      id,
      error: {
        code: URL_ELICITATION_REQUIRED,
        message,
        data: {
          elicitations: [
            { mode: 'url', elicitationId: randomBytes(12).toString('base64url'), url: where.url, message },
          ],
        },
      },
    };
  }
  return {
    jsonrpc: '2.0',
    id,
    error: {
      code: RpcErrorCode.AUTH_REQUIRED,
      message: `latchkey: ${message}`,
      data: { latchkey: { code: 'LOGIN_REQUIRED', upstream: where.upstream, connect_url: where.url } },
    },
  };
}

/** Did a URL-elicitation capability come with these client capabilities? */
export function declaresUrlElicitation(capabilities: unknown): boolean {
  const elicitation = (capabilities as { elicitation?: unknown } | null | undefined)?.elicitation;
  const url = (elicitation as { url?: unknown } | null | undefined)?.url;
  return typeof url === 'object' && url !== null;
}
