/**
 * Just enough of a browser cookie store to carry oidc-provider's interaction and session
 * cookies between requests: name=value pairs, removed when the server clears them. Domain
 * and path are ignored because every request of one login goes to one loopback origin.
 */
export class CookieJar {
  readonly #cookies = new Map<string, string>();

  /** Take the Set-Cookie headers of a response. */
  store(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || attributes.some(isExpiry)) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  /** The Cookie request header, or undefined when the jar is empty. */
  header(): string | undefined {
    if (this.#cookies.size === 0) return undefined;
    return [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

/** True for an attribute that deletes the cookie (Max-Age=0 or an Expires in the past). */
function isExpiry(attribute: string): boolean {
  const [rawName = '', rawValue = ''] = attribute.split('=');
  const name = rawName.trim().toLowerCase();
  const value = rawValue.trim();
  if (name === 'max-age') return Number(value) <= 0;
  if (name === 'expires') return Date.parse(value) <= Date.now();
  return false;
}
