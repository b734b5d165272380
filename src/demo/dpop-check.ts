/**
 * The demo MCP server's DPoP check (RFC 9449 §7, §9), for a token the AS bound to a key
 * (introspection's `cnf.jkt`): exactly one `DPoP` proof, `typ` dpop+jwt, an asymmetric `alg`,
 * a signature by the embedded key, that key's thumbprint equal to `cnf.jkt`, `htm` and `htu`
 * matching the request, `iat` within five minutes, `ath` the token's hash, a `jti` never seen
 * before and, when nonces are required, the server's current nonce.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, jwtVerify } from 'jose';

/** Proofs older or newer than this are refused. */
const IAT_WINDOW_S = 300;
/** jtis remembered for replay detection; the oldest are forgotten beyond this. */
const MAX_JTIS = 10_000;
const ALGS = ['ES256', 'ES384', 'ES512', 'PS256', 'RS256', 'EdDSA', 'Ed25519'];

export interface DPoPCheckOptions {
  /** Require the server's nonce in every proof (answered with `use_dpop_nonce`). Default false. */
  requireNonce?: boolean;
}

export type DPoPVerdict =
  { ok: true } | { ok: false; error: 'invalid_dpop_proof' | 'use_dpop_nonce'; description: string };

export class DPoPCheck {
  readonly #jtis = new Set<string>();
  readonly #requireNonce: boolean;
  /** The nonce proofs must carry; handed out on every answer. */
  readonly nonce = randomBytes(16).toString('base64url');

  constructor(options: DPoPCheckOptions = {}) {
    this.#requireNonce = options.requireNonce ?? false;
  }

  async verify(req: IncomingMessage, url: string, token: string, jkt: string): Promise<DPoPVerdict> {
    const proofs = req.headersDistinct['dpop'] ?? [];
    if (proofs.length !== 1 || proofs[0] === undefined) return refuse('exactly one DPoP proof is required');
    const proof = proofs[0];
    let payload: Record<string, unknown>;
    try {
      const header = decodeProtectedHeader(proof);
      if (header.typ !== 'dpop+jwt') return refuse('typ is not dpop+jwt');
      if (header.jwk === undefined || 'd' in header.jwk) return refuse('no public jwk');
      if ((await calculateJwkThumbprint(header.jwk)) !== jkt) return refuse('key does not match cnf.jkt');
      ({ payload } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ALGS }));
    } catch (error) {
      return refuse(`proof does not verify: ${(error as Error).message}`);
    }
    const target = new URL(url);
    if (payload['htm'] !== req.method) return refuse('htm does not match');
    if (payload['htu'] !== `${target.origin}${target.pathname}`) return refuse('htu does not match');
    const iat = payload['iat'];
    if (typeof iat !== 'number' || Math.abs(Date.now() / 1000 - iat) > IAT_WINDOW_S)
      return refuse('stale iat');
    if (payload['ath'] !== createHash('sha256').update(token).digest('base64url'))
      return refuse('ath does not match');
    const jti = payload['jti'];
    if (typeof jti !== 'string' || jti.length < 12 || this.#jtis.has(jti))
      return refuse('jti missing or replayed');
    this.#remember(jti);
    if (this.#requireNonce && payload['nonce'] !== this.nonce)
      return { ok: false, error: 'use_dpop_nonce', description: 'use the DPoP-Nonce this server sent' };
    return { ok: true };
  }

  #remember(jti: string): void {
    this.#jtis.add(jti);
    if (this.#jtis.size > MAX_JTIS) {
      const oldest = this.#jtis.values().next();
      if (oldest.done !== true) this.#jtis.delete(oldest.value);
    }
  }
}

function refuse(description: string): DPoPVerdict {
  return { ok: false, error: 'invalid_dpop_proof', description };
}
