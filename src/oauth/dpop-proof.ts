/**
 * DPoP proofs (RFC 9449 §4): one signer per store key, shared by the authorization server's
 * requests (dpop-fetch.ts) and every MCP request (src/mcp/auth-fetch.ts), with the nonces the
 * servers handed out remembered per origin (§8, §9).
 *
 * Signed with node:crypto's synchronous ECDSA (ES256, P-256) rather than WebCrypto: a proof
 * goes on every MCP request, and a synchronous sign with a prepared header costs tens of
 * microseconds with no promise hops (`npm run bench -- dpop`).
 */
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
} from 'node:crypto';

/** The one algorithm latchkey signs proofs with; an AS must list it to get bound tokens. */
export const DPOP_ALG = 'ES256';

/** Origins whose latest nonce is kept; the oldest is forgotten beyond this. */
const MAX_NONCES = 100;

/** The private key as a JWK string: the only form stores keep (sealed, never in clear). */
export function generateDPoPPrivateJwk(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return JSON.stringify(privateKey.export({ format: 'jwk' }));
}

export class DPoPSigner {
  readonly #key: KeyObject;
  /** base64url of the protected header, the same for every proof. */
  readonly #header: string;
  /** RFC 7638 thumbprint of the public key, as the AS puts it in `cnf.jkt`. */
  readonly thumbprint: string;
  readonly #nonces = new Map<string, string>();
  /** The last token hashed for `ath`: the same token goes out on request after request. */
  #ath: { token: string; hash: string } | undefined;

  constructor(privateJwk: string) {
    const jwk = JSON.parse(privateJwk) as { kty: string; crv: string; x: string; y: string };
    this.#key = createPrivateKey({ key: jwk, format: 'jwk' });
    // Member order as RFC 7638 wants it for the thumbprint; the header reuses it.
    const publicJwk = { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
    this.#header = b64u(JSON.stringify({ typ: 'dpop+jwt', alg: DPOP_ALG, jwk: publicJwk }));
    this.thumbprint = createHash('sha256').update(JSON.stringify(publicJwk)).digest('base64url');
  }

  /**
   * A fresh proof for one request: `htu` is the URL without query and fragment, `ath` binds
   * the access token when one is presented (to a resource server), and the origin's latest
   * nonce is included when it gave one.
   */
  proof(method: string, url: URL, accessToken?: string): string {
    const claims: Record<string, string | number> = {
      jti: randomBytes(16).toString('base64url'),
      htm: method.toUpperCase(),
      htu: `${url.origin}${url.pathname}`,
      iat: Math.floor(Date.now() / 1000),
    };
    if (accessToken !== undefined) claims['ath'] = this.#athOf(accessToken);
    const nonce = this.#nonces.get(url.origin);
    if (nonce !== undefined) claims['nonce'] = nonce;
    const input = `${this.#header}.${b64u(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), { key: this.#key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  }

  /**
   * Keep the `DPoP-Nonce` an answer carries, if any (any answer may rotate it, §8.2).
   * Returns true when it carried one.
   */
  rememberNonce(url: URL, headers: { get(name: string): string | null }): boolean {
    const nonce = headers.get('dpop-nonce');
    // A nonce is NQCHAR (§8.1); anything else is not echoed back into a signed proof.
    if (
      nonce === null ||
      nonce.length === 0 ||
      nonce.length > 512 ||
      !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(nonce)
    )
      return false;
    this.#nonces.delete(url.origin);
    this.#nonces.set(url.origin, nonce);
    if (this.#nonces.size > MAX_NONCES) {
      const oldest = this.#nonces.keys().next();
      if (oldest.done !== true) this.#nonces.delete(oldest.value);
    }
    return true;
  }

  #athOf(token: string): string {
    if (this.#ath?.token !== token)
      this.#ath = { token, hash: createHash('sha256').update(token, 'ascii').digest('base64url') };
    return this.#ath.hash;
  }
}

function b64u(text: string): string {
  return Buffer.from(text).toString('base64url');
}
