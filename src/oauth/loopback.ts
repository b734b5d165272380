/**
 * Plain http is tolerated only for loopback hosts (local development, tests, the demo).
 * Everything else must be https; oauth4webapi enforces that unless told otherwise, and we
 * tell it otherwise only for these hosts.
 */
export function isLoopbackUrl(url: string | URL): boolean {
  let host: string;
  try {
    host = new URL(String(url)).hostname;
  } catch {
    return false;
  }
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * The rule for every URL latchkey sends a user to (the browser login's authorization URL,
 * the device login's verification URI): http(s) only, and https unless the host is
 * loopback. A hostile authorization server must not get `javascript:`, `file:` or plain
 * http to a remote host in front of the user.
 */
export function isUserFacingUrl(url: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  return parsed.protocol === 'https:' || (parsed.protocol === 'http:' && isLoopbackUrl(parsed));
}
