/**
 * The login flags of `login` and `proxy`, turned into the login hook's options. Parsing
 * only: the flows themselves are loaded when a login runs (login-hook.ts).
 */
import { readFileSync } from 'node:fs';

import { ErrorCode, LatchkeyError } from '../errors.js';
import type { ClientConfig } from '../oauth/types.js';
import type { CliIO } from './io.js';
import type { LoginOptions } from './login-hook.js';

export interface LoginFlags {
  device?: boolean;
  browser?: boolean;
  /** `login --idp`: the argument is an identity provider to sign in to. */
  idp?: boolean;
  clientCredentials?: boolean;
  workloadTokenFile?: string;
  clientId?: string;
  clientMetadataUrl?: string;
  scope?: string;
  port?: number;
  authParam?: string[];
  offlineAccess?: boolean;
  /** false with `--no-dpop`. */
  dpop?: boolean;
  resource: boolean;
  disableResourceParameter?: boolean;
}

/** The login hook's options from the flags, except the store (opened when the command runs). */
export function loginOptionsFromFlags(
  io: CliIO,
  opts: LoginFlags,
): Omit<LoginOptions, 'store'> & { client: ClientConfig } {
  const secret = io.env['LATCHKEY_CLIENT_SECRET'];
  const client: ClientConfig = {
    ...(opts.clientId === undefined ? {} : { clientId: opts.clientId }),
    ...(secret === undefined || secret === '' ? {} : { clientSecret: secret }),
    ...(opts.clientMetadataUrl === undefined ? {} : { clientMetadataUrl: opts.clientMetadataUrl }),
    ...(opts.workloadTokenFile === undefined ? {} : { workloadTokenFile: opts.workloadTokenFile }),
    ...(opts.dpop === false ? { dpop: false } : {}),
  };
  const flow =
    opts.workloadTokenFile !== undefined
      ? 'workload-identity'
      : opts.clientCredentials
        ? 'client-credentials'
        : opts.device
          ? 'device'
          : opts.browser
            ? 'browser'
            : 'auto';
  return {
    flow,
    client,
    notify: io.err,
    ...(opts.port === undefined ? {} : { redirectPort: opts.port }),
    quirks: {
      omitResource: !opts.resource,
      offlineAccess: opts.offlineAccess === true,
      extraAuthorizationParams: parseParams(opts.authParam ?? []),
    },
  };
}

/** `--scope "a b"` as a list; undefined when not given (the server's advertised scopes apply). */
export function scopeList(scope: string | undefined): string[] | undefined {
  return scope?.split(/\s+/).filter(Boolean);
}

function parseParams(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) {
      throw new LatchkeyError(
        ErrorCode.INVALID_INPUT,
        `--auth-param wants name=value, got ${JSON.stringify(pair)}.`,
        { retryable: false },
      );
    }
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

/** mcp-remote's `--static-oauth-client-info`: inline JSON or `@file`. */
export function staticClientInfo(value: string | undefined): ClientConfig {
  if (value === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.startsWith('@') ? readFileSync(value.slice(1), 'utf8') : value);
  } catch (error) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      `--static-oauth-client-info is not readable JSON (${(error as Error).message}).`,
      {
        retryable: false,
        next: { kind: 'configure', detail: 'pass {"client_id": "..."} or @path/to/file.json' },
      },
    );
  }
  const info = (parsed ?? {}) as { client_id?: unknown; client_secret?: unknown };
  if (typeof info.client_id !== 'string' || info.client_id === '') {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, '--static-oauth-client-info needs a "client_id".', {
      retryable: false,
      next: { kind: 'configure', detail: 'pass {"client_id": "..."}' },
    });
  }
  return {
    clientId: info.client_id,
    ...(typeof info.client_secret === 'string' && info.client_secret !== ''
      ? { clientSecret: info.client_secret }
      : {}),
  };
}
