import { createPrivateKey, type KeyObject, webcrypto } from 'node:crypto';

import * as oauth from 'oauth4webapi';

import { ErrorCode, LatchkeyError } from '../errors.js';
import type { Registration } from '../store/contract.js';
import { boundedFetch, ResponseLimits } from './bounded-fetch.js';
import { buildContext, type ClientContext, type ClientContextOptions } from './client-context.js';
import { type GrantResult, grantResult, requestSignal } from './grants.js';
import { asRequestError } from './oauth-errors.js';
import type { ClientConfig } from './types.js';

/**
 * The client credentials grant (RFC 6749 §4.4; MCP extension "OAuth client credentials",
 * SEP-1046): a confidential client gets tokens for itself, with no user and no browser.
 * The client authenticates with client_secret_basic, client_secret_post or private_key_jwt
 * (RFC 7523), whichever its context carries.
 */
export interface ClientCredentialsOptions {
  /** RFC 8707 resource indicator (the MCP server's canonical URI); undefined omits it. */
  resource: string | undefined;
  scope?: string | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Overrides the fetch the context was built with. */
  fetch?: typeof fetch | undefined;
  /** The server named in errors. Default: `resource`. */
  server?: string | undefined;
}

/** One token request; like every grant here, never retried (that is the caller's call). */
export async function clientCredentialsGrant(
  ctx: ClientContext,
  options: ClientCredentialsOptions,
): Promise<GrantResult> {
  const params = new URLSearchParams();
  if (options.resource !== undefined) params.set('resource', options.resource);
  if (options.scope !== undefined && options.scope !== '') params.set('scope', options.scope);
  const requestOptions = ctx.requestOptions(requestSignal(options.timeoutMs, options.signal));
  if (options.fetch !== undefined) {
    requestOptions[oauth.customFetch] = boundedFetch(options.fetch, {
      limit: ResponseLimits.endpoint,
      what: 'token endpoint response',
      server: options.server,
    }) as never;
  }
  const requestedAt = Date.now();
  try {
    const response = await oauth.clientCredentialsGrantRequest(
      ctx.as,
      ctx.client,
      ctx.clientAuth,
      params,
      requestOptions,
    );
    return grantResult(
      await oauth.processClientCredentialsResponse(ctx.as, ctx.client, response),
      requestedAt,
    );
  } catch (error) {
    throw clientCredentialsError(options.server ?? options.resource ?? ctx.as.issuer, ctx, error, options);
  }
}

function clientCredentialsError(
  server: string,
  ctx: ClientContext,
  error: unknown,
  options: ClientCredentialsOptions,
): LatchkeyError {
  const request = {
    server,
    what: `the client credentials grant at ${ctx.as.issuer} failed temporarily`,
    cancelled: 'the client credentials request was cancelled.',
    signal: options.signal,
  };
  // With no user involved, every refusal is about the client's configuration.
  return asRequestError(
    error,
    request,
    (refused) =>
      new LatchkeyError(
        ErrorCode.CLIENT_REJECTED,
        `the authorization server ${ctx.as.issuer} refused client ${JSON.stringify(ctx.client.client_id)} the client credentials grant (${refused.code}${refused.description}).`,
        {
          server,
          retryable: false,
          next: {
            kind: 'configure',
            detail:
              'check the client id, its secret or key, and that the client may use the client_credentials grant',
          },
          cause: refused.cause,
        },
      ),
  );
}

/**
 * A ClientContext for a registration, with the configured private key when the client
 * authenticates with private_key_jwt. Keys are never stored, so they come from the
 * configuration each time.
 */
export async function clientContextForConfig(
  as: oauth.AuthorizationServer,
  registration: Registration,
  config: ClientConfig,
  options: Pick<ClientContextOptions, 'fetch' | 'warn' | 'dpopKeys'> = {},
): Promise<ClientContext> {
  const ctx = buildContext(as, registration, options);
  if (registration.tokenEndpointAuthMethod !== 'private_key_jwt') return ctx;
  if (config.privateKey === undefined) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      `client ${JSON.stringify(registration.clientId)} authenticates with private_key_jwt, but no private key is configured.`,
      {
        retryable: false,
        next: { kind: 'configure', detail: 'configure the private key registered for this client' },
      },
    );
  }
  const key = await importPrivateKey(config.privateKey);
  return {
    ...ctx,
    client: { ...ctx.client, token_endpoint_auth_method: 'private_key_jwt' },
    clientAuth: oauth.PrivateKeyJwt(key),
  };
}

type PrivateKeyConfig = NonNullable<ClientConfig['privateKey']>;

/**
 * A signing key for private_key_jwt from a CryptoKey or a PKCS#8 PEM. The JWS algorithm is
 * `alg` when given, else inferred: RS256 for RSA, PS256 for RSA-PSS, ES256/384/512 by curve,
 * Ed25519 for Ed25519 keys.
 */
export async function importPrivateKey(config: PrivateKeyConfig): Promise<oauth.PrivateKey> {
  const kid = config.kid === undefined ? {} : { kid: config.kid };
  if (typeof config.key !== 'string') return { key: config.key as oauth.CryptoKey, ...kid };
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(config.key);
  } catch (cause) {
    throw invalidKey('the private key is not a readable PEM private key', cause);
  }
  const algorithm = webCryptoAlgorithm(config.alg ?? inferAlg(keyObject));
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  try {
    const key = await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
    return { key: key as oauth.CryptoKey, ...kid };
  } catch (cause) {
    throw invalidKey(
      `the private key does not fit the algorithm ${config.alg ?? inferAlg(keyObject)}`,
      cause,
    );
  }
}

function inferAlg(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'RS256';
    case 'rsa-pss':
      return 'PS256';
    case 'ed25519':
      return 'Ed25519';
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1' || curve === 'P-256') return 'ES256';
      if (curve === 'secp384r1' || curve === 'P-384') return 'ES384';
      if (curve === 'secp521r1' || curve === 'P-521') return 'ES512';
      throw invalidKey(`unsupported EC curve ${String(curve)}`);
    }
    default:
      throw invalidKey(`unsupported key type ${String(key.asymmetricKeyType)}`);
  }
}

function webCryptoAlgorithm(
  alg: string,
): webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams | webcrypto.Algorithm {
  const hash = (bits: string): string => `SHA-${bits}`;
  const match = /^(RS|PS|ES)(256|384|512)$/.exec(alg);
  if (match !== null) {
    const [, family, bits = '256'] = match;
    if (family === 'RS') return { name: 'RSASSA-PKCS1-v1_5', hash: hash(bits) };
    if (family === 'PS') return { name: 'RSA-PSS', hash: hash(bits) };
    return { name: 'ECDSA', namedCurve: bits === '512' ? 'P-521' : `P-${bits}` };
  }
  if (alg === 'Ed25519' || alg === 'EdDSA') return { name: 'Ed25519' };
  throw invalidKey(`unsupported private_key_jwt algorithm ${JSON.stringify(alg)}`);
}

function invalidKey(message: string, cause?: unknown): LatchkeyError {
  return new LatchkeyError(ErrorCode.INVALID_INPUT, `${message}.`, {
    retryable: false,
    next: {
      kind: 'configure',
      detail: 'configure a PKCS#8 PEM (RSA, EC P-256/384/521 or Ed25519) private key',
    },
    cause,
  });
}
