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
