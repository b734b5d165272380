import { open } from 'node:fs/promises';

import * as oauth from 'oauth4webapi';

import { ErrorCode, LatchkeyError } from '../errors.js';
import { secrets } from '../redact.js';
import type { ClientContext } from './client-context.js';
import { type GrantResult, grantResult, requestSignal } from './grants.js';
import { asRequestError } from './oauth-errors.js';

/**
 * Workload identity federation (MCP extension `io.modelcontextprotocol/auth/wif`, SEP-1933):
 * the RFC 7523 §2.1 JWT bearer grant with a JWT the platform issued to the workload (a
 * Kubernetes projected service-account token, a CI system's OIDC token, a SPIFFE JWT-SVID).
 * latchkey never mints it: it reads the platform's token file when it needs a token, so a
 * rotated file is picked up, and sends the JWT unchanged. No client secret exists anywhere.
 */
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** Platform tokens are a few KiB; anything much larger is not one. */
const MAX_TOKEN_FILE_BYTES = 64 * 1024;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export interface JwtBearerOptions {
  /** The workload JWT, sent as `assertion`. */
  assertion: string;
  /** RFC 8707 resource indicator (the MCP server's canonical URI); undefined omits it. */
  resource: string | undefined;
  /** Only what was asked for: the grant adds no default scopes. */
  scope?: string | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** The server named in errors. */
  server: string;
  /**
   * What the assertion is, for errors: a workload's platform JWT (default) or an ID-JAG from
   * the enterprise IdP (id-jag.ts), whose refusal is the IdP's or the AS's policy.
   */
  assertionKind?: 'workload' | 'id-jag';
}

/**
 * The JWT in `path`, read now (platforms rotate the file). It is registered with the
 * redacting logger before anything could print it, and never appears in an error.
 */
export async function readWorkloadToken(path: string, server?: string): Promise<string> {
  let text: string;
  try {
    const file = await open(path, 'r');
    try {
      const buffer = Buffer.alloc(MAX_TOKEN_FILE_BYTES + 1);
      const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
      if (bytesRead > MAX_TOKEN_FILE_BYTES) throw tokenFileError(path, server, 'is larger than 64 KiB');
      text = buffer.subarray(0, bytesRead).toString('utf8').trim();
    } finally {
      await file.close();
    }
  } catch (error) {
    if (error instanceof LatchkeyError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'an error';
    throw tokenFileError(path, server, `cannot be read (${code})`);
  }
  secrets.add(text);
  if (!JWT_SHAPE.test(text)) throw tokenFileError(path, server, 'does not hold a JWT');
  return text;
}

function tokenFileError(path: string, server: string | undefined, problem: string): LatchkeyError {
  return new LatchkeyError(ErrorCode.INVALID_INPUT, `the workload token file ${path} ${problem}.`, {
    ...(server === undefined ? {} : { server }),
    retryable: false,
    next: {
      kind: 'configure',
      detail:
        'point the workload token file at the JWT your platform provides (for example a projected service-account token)',
    },
  });
}

/** One token request with the workload JWT; never retried, and a refusal is final. */
export async function jwtBearerGrant(ctx: ClientContext, options: JwtBearerOptions): Promise<GrantResult> {
  const params = new URLSearchParams({ assertion: options.assertion });
  if (options.resource !== undefined) params.set('resource', options.resource);
  if (options.scope !== undefined && options.scope !== '') params.set('scope', options.scope);
  const requestOptions = ctx.requestOptions(requestSignal(options.timeoutMs, options.signal));
  const requestedAt = Date.now();
  try {
    const response = await oauth.genericTokenEndpointRequest(
      ctx.as,
      ctx.client,
      ctx.clientAuth,
      JWT_BEARER_GRANT,
      params,
      requestOptions,
    );
    return grantResult(
      await oauth.processGenericTokenEndpointResponse(ctx.as, ctx.client, response),
      requestedAt,
    );
  } catch (error) {
    throw jwtBearerError(ctx, error, options);
  }
}

function jwtBearerError(ctx: ClientContext, error: unknown, options: JwtBearerOptions): LatchkeyError {
  const { server } = options;
  const idJag = options.assertionKind === 'id-jag';
  const what = idJag ? 'ID-JAG' : 'workload identity token';
  const request = {
    server,
    what: `the ${idJag ? 'ID-JAG' : 'workload identity'} grant at ${ctx.as.issuer} failed temporarily`,
    cancelled: `the ${what} request was cancelled.`,
    signal: options.signal,
  };
  // invalid_grant, invalid_scope, unauthorized_client: the setup is wrong, and the same JWT
  // will not do better on a second try (SEP-1933: surface, do not retry).
  return asRequestError(
    error,
    request,
    (refused) =>
      new LatchkeyError(
        ErrorCode.CLIENT_REJECTED,
        `the authorization server ${ctx.as.issuer} refused the ${what} (${refused.code}${refused.description}).`,
        {
          server,
          retryable: false,
          next: {
            kind: 'configure',
            detail: idJag
              ? `check that ${ctx.as.issuer} trusts the identity provider and knows this client id`
              : `check that ${ctx.as.issuer} trusts the workload token's issuer, that its audience is ${ctx.as.issuer} (or its token endpoint), and the scopes asked for`,
          },
          cause: refused.cause,
        },
      ),
  );
}
