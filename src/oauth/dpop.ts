/**
 * DPoP at the authorization server (RFC 9449 §5, §8): when the AS metadata lists ES256 in
 * `dpop_signing_alg_values_supported`, every request latchkey sends it (token, refresh,
 * device, client credentials, revocation) carries a fresh proof signed with the store's key,
 * and a `400 use_dpop_nonce` is answered once with a new proof carrying the AS's nonce.
 *
 * Why at the fetch and not with oauth4webapi's `DPoP()` handle: one signer then serves the AS
 * and the MCP requests alike (src/mcp/auth-fetch.ts), with one nonce memory per origin, and
 * the nonce retry lives in one place instead of around each of the seven grant call sites. A
 * request refused for its nonce was not processed (§8), so sending it again is safe, even a
 * refresh under rotation.
 */
import type * as oauth from 'oauth4webapi';

import { ErrorCode, LatchkeyError } from '../errors.js';
import type { DPoPKeyTable } from '../store/contract.js';
import { DPOP_ALG, DPoPSigner, generateDPoPPrivateJwk } from './dpop-proof.js';
import type { BearerChallenge } from './types.js';

/** Signers by store object: the key is read (and unsealed) once per process and store. */
const signers = new WeakMap<DPoPKeyTable, Promise<DPoPSigner>>();

/** The store's DPoP signer; its key is made and stored on first use. */
export function storeSigner(store: DPoPKeyTable): Promise<DPoPSigner> {
  let signer = signers.get(store);
  if (signer === undefined) {
    signer = store
      .dpopKey(DPOP_ALG, () => ({
        alg: DPOP_ALG,
        privateJwk: generateDPoPPrivateJwk(),
        createdAt: Date.now(),
      }))
      .then((key) => new DPoPSigner(key.privateJwk));
    // A failed read is not remembered: the next request tries the store again.
    signer.catch(() => signers.delete(store));
    signers.set(store, signer);
  }
  return signer;
}

/** Does this AS bind tokens to a key latchkey can sign with? */
export function asSupportsDPoP(as: oauth.AuthorizationServer): boolean {
  const algs = as.dpop_signing_alg_values_supported;
  return Array.isArray(algs) && algs.includes(DPOP_ALG);
}

/**
 * Whether to bind tokens for this MCP server to the DPoP key: the client config allows it
 * and the server shows it takes DPoP tokens, by a `DPoP` challenge in its 401 or DPoP fields
 * in its protected resource metadata (RFC 9728 §2). An AS that offers DPoP is not enough: it
 * serves servers that know only Bearer too, and those would refuse every request of a bound
 * token (`Authorization: DPoP`) until the user logged in again with DPoP off.
 */
export function wantsDPoP(
  config: { dpop?: boolean } | undefined,
  challenge: BearerChallenge | undefined,
  resourceMetadata?: Record<string, unknown>,
): boolean {
  if (config?.dpop === false) return false;
  if (challenge?.dpop === true) return true;
  const algs = resourceMetadata?.['dpop_signing_alg_values_supported'];
  return (
    resourceMetadata?.['dpop_bound_access_tokens_required'] === true ||
    (Array.isArray(algs) && algs.length > 0)
  );
}

/** A store that may hold a DPoP key: every latchkey store does; an embedder's may not. */
export function dpopKeysOf(store: object): DPoPKeyTable | undefined {
  return typeof (store as Partial<DPoPKeyTable>).dpopKey === 'function' ? (store as DPoPKeyTable) : undefined;
}

/** The signer of a store, or a rejection saying the store keeps no DPoP key. */
export function signerOf(store: object): Promise<DPoPSigner> {
  const keys = dpopKeysOf(store);
  if (keys !== undefined) return storeSigner(keys);
  const detail = 'use a latchkey store, which keeps the DPoP key';
  return Promise.reject(
    new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      'this store keeps no DPoP key, so a DPoP-bound token cannot be used.',
      {
        retryable: false,
        next: { kind: 'configure', detail },
      },
    ),
  );
}

/**
 * `send` with a proof on every request and one retry on a nonce challenge. The AS's nonce
 * comes in a `DPoP-Nonce` header on any answer and is kept for its origin.
 */
export function dpopFetch(send: typeof fetch, keys: DPoPKeyTable): typeof fetch {
  return async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const signer = await storeSigner(keys);
    const method = init.method ?? 'GET';
    const attempt = (): Promise<Response> => {
      const headers = new Headers(init.headers);
      headers.set('dpop', signer.proof(method, url));
      return send(input, { ...init, headers });
    };
    const response = await attempt();
    const fresh = signer.rememberNonce(url, response.headers);
    if (!fresh || !(await isNonceError(response))) return response;
    await response.body?.cancel().catch(() => undefined);
    const retried = await attempt();
    signer.rememberNonce(url, retried.headers);
    return retried;
  };
}

/** `400 {"error":"use_dpop_nonce"}` (§8), read from a copy so the caller still has the body. */
async function isNonceError(response: Response): Promise<boolean> {
  if (response.status !== 400 && response.status !== 401) return false;
  // An error body is small; a huge one is not an OAuth error and is not read twice.
  if (Number(response.headers.get('content-length') ?? 0) > 65_536) return false;
  try {
    const body = (await response.clone().json()) as { error?: unknown };
    return body.error === 'use_dpop_nonce';
  } catch {
    return false;
  }
}
