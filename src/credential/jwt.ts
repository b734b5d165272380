/**
 * Read the `exp` claim of a JWT access token without verifying it. The client is not the
 * audience of the token, so the claim is only a hint for when to refresh, used when the
 * token response carried no `expires_in`.
 */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (typeof payload !== 'object' || payload === null) return undefined;
    const exp = (payload as { exp?: unknown }).exp;
    if (typeof exp !== 'number' || !Number.isFinite(exp) || exp <= 0) return undefined;
    return Math.floor(exp * 1000);
  } catch {
    return undefined;
  }
}
