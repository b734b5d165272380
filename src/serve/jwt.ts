/**
 * User JWTs: end-user tokens from the application's own IdP, so a host can call
 * `/mcp/{upstream}` as the user without an app key. The signature is checked against the
 * IdP's JWKS (discovered from the issuer's metadata when not configured), then issuer,
 * audience and the time claims with a small skew; `sub` is the subject. JWS verification
 * and JWKS caching and rotation are jose's.
 */
import { readFileSync } from 'node:fs';

import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';

import { ErrorCode, LatchkeyError } from '../errors.js';
import { isSubject } from './subject.js';

export interface JwtConfig {
  /** The IdP's issuer identifier; the `iss` a token must carry. */
  issuer: string;
  /** The `aud` a token must carry: this gateway's identifier at the IdP. */
  audience: string;
  /** Where the IdP's keys are. Default: `jwks_uri` of the issuer's metadata. */
  jwksUri?: string;
  /** Clock skew allowed on exp, nbf and iat, in seconds. Default 30. */
  clockToleranceSec?: number;
}

/** Asymmetric algorithms only: a JWKS is public, so HMAC or `none` would let anyone sign. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

export class JwtVerifier {
  readonly #config: JwtConfig;
  #keys: Promise<JWTVerifyGetKey> | undefined;

  constructor(config: JwtConfig) {
    this.#config = config;
  }

  /**
   * The subject of a valid token, or undefined for any token that is not (bad signature,
   * other issuer or audience, expired, not yet valid, no usable `sub`). Why is not told to
   * the caller, as with app keys. Throws only when the IdP's keys cannot be found.
   */
  async subjectOf(token: string): Promise<string | undefined> {
    const keys = await this.#jwks();
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: this.#config.issuer,
        audience: this.#config.audience,
        algorithms: ALGORITHMS,
        clockTolerance: this.#config.clockToleranceSec ?? 30,
        requiredClaims: ['sub', 'exp'],
      });
      return typeof payload.sub === 'string' && isSubject(payload.sub) ? payload.sub : undefined;
    } catch (error) {
      if (isKeySourceFailure(error)) throw unavailable(this.#config.issuer, error);
      return undefined;
    }
  }

  #jwks(): Promise<JWTVerifyGetKey> {
    this.#keys ??= this.#discover().catch((error: unknown) => {
      // Tried again on the next token: the IdP may be back by then.
      this.#keys = undefined;
      throw unavailable(this.#config.issuer, error);
    });
    return this.#keys;
  }

  async #discover(): Promise<JWTVerifyGetKey> {
    const uri = this.#config.jwksUri ?? (await discoverJwksUri(this.#config.issuer));
    return createRemoteJWKSet(new URL(uri));
  }
}

/** `jwks_uri` from OpenID discovery, else RFC 8414 metadata; the metadata must name the same issuer. */
async function discoverJwksUri(issuer: string): Promise<string> {
  const base = new URL(issuer);
  const path = base.pathname.replace(/\/$/, '');
  const candidates = [
    `${base.origin}${path}/.well-known/openid-configuration`,
    `${base.origin}/.well-known/oauth-authorization-server${path}`,
  ];
  for (const url of candidates) {
    const response = await fetch(url, { headers: { accept: 'application/json' }, redirect: 'error' });
    if (!response.ok) continue;
    const metadata = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
    if (metadata.issuer === issuer && typeof metadata.jwks_uri === 'string') return metadata.jwks_uri;
  }
  throw new Error(`no metadata with a jwks_uri for ${issuer}`);
}

/** jose's errors for keys it could not fetch, as opposed to a token that failed a check. */
function isKeySourceFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  // A failed or unreadable JWKS fetch is jose's generic error, a network failure fetch's own.
  return (
    code === 'ERR_JWKS_TIMEOUT' ||
    code === 'ERR_JOSE_GENERIC' ||
    (error instanceof Error && !('code' in error))
  );
}

function unavailable(issuer: string, cause: unknown): LatchkeyError {
  return new LatchkeyError(
    ErrorCode.AS_UNAVAILABLE,
    `the keys of the JWT issuer ${issuer} could not be read.`,
    {
      retryable: true,
      next: { kind: 'retry' },
      cause,
    },
  );
}

/**
 * The `jwt` object of the serve config file (docs/serve.md), or undefined when it has none:
 * `{ "issuer", "audience", "jwks_uri"? }`.
 */
export function readJwtConfig(path: string): JwtConfig | undefined {
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as { jwt?: unknown };
  if (parsed.jwt === undefined) return undefined;
  const jwt = parsed.jwt as Record<string, unknown> | null;
  const known = new Set(['issuer', 'audience', 'jwks_uri']);
  const fields = typeof jwt === 'object' && jwt !== null ? Object.keys(jwt) : [];
  const valid =
    typeof jwt?.['issuer'] === 'string' &&
    typeof jwt['audience'] === 'string' &&
    (jwt['jwks_uri'] === undefined || typeof jwt['jwks_uri'] === 'string') &&
    fields.every((f) => known.has(f));
  if (!valid) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      `${path}: "jwt" must be { issuer, audience, jwks_uri? }.`,
      {
        retryable: false,
        next: { kind: 'configure', detail: 'see docs/serve.md, "User JWTs"' },
      },
    );
  }
  return jwtConfig(String(jwt['issuer']), String(jwt['audience']), jwt['jwks_uri'] as string | undefined);
}

/** Checked JWT settings: the issuer and a JWKS URI must be URLs. */
export function jwtConfig(issuer: string, audience: string, jwksUri?: string): JwtConfig {
  for (const [name, value] of [
    ['issuer', issuer],
    ['jwks_uri', jwksUri],
  ] as const) {
    if (value === undefined) continue;
    if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) {
      throw new LatchkeyError(
        ErrorCode.INVALID_INPUT,
        `the JWT ${name} ${JSON.stringify(value)} is not an http(s) URL.`,
        {
          retryable: false,
          next: { kind: 'configure', detail: 'see docs/serve.md, "User JWTs"' },
        },
      );
    }
  }
  if (audience === '') {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'the JWT audience is empty.', {
      retryable: false,
      next: { kind: 'configure', detail: 'see docs/serve.md, "User JWTs"' },
    });
  }
  return { issuer, audience, ...(jwksUri === undefined ? {} : { jwksUri }) };
}

/**
 * The JWT settings of `latchkey serve`: the config file's `jwt`, with each flag given
 * taking the place of the file's field. Issuer and audience come together or not at all.
 */
export function jwtSettings(
  configFile: string | undefined,
  flags: { jwtIssuer?: string; jwtAudience?: string; jwtJwksUri?: string },
): JwtConfig | undefined {
  const file = configFile === undefined ? undefined : readJwtConfig(configFile);
  const issuer = flags.jwtIssuer ?? file?.issuer;
  const audience = flags.jwtAudience ?? file?.audience;
  const jwksUri = flags.jwtJwksUri ?? file?.jwksUri;
  if (issuer === undefined && audience === undefined && jwksUri === undefined) return undefined;
  if (issuer === undefined || audience === undefined) {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'user JWTs need both an issuer and an audience.', {
      retryable: false,
      next: {
        kind: 'configure',
        detail: 'give --jwt-issuer and --jwt-audience (or "jwt" in the config file)',
      },
    });
  }
  return jwtConfig(issuer, audience, jwksUri);
}
