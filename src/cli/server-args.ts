/**
 * Arguments shared by the commands that talk to an MCP server (proxy, tools, call): the
 * server URL and the extra headers.
 */
import { canonicalServer } from '../credential/key.js';
import { secrets } from '../credential/redact.js';
import { ErrorCode, LatchkeyError } from '../errors.js';

/** The server URL: http(s) only, and plain http only for loopback (tokens travel with it). */
export function checkedServer(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(raw, `${JSON.stringify(raw)} is not a URL.`, 'pass the https:// URL of the MCP server');
  }
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw invalid(
      raw,
      `latchkey sends OAuth tokens only over https (plain http only to 127.0.0.1, ::1 or localhost).`,
      'use the https:// URL of the MCP server',
    );
  }
  return canonicalServer(raw);
}

export function parseHeaders(
  pairs: readonly string[],
  env: NodeJS.ProcessEnv,
  server: string,
): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf(':');
    const name = at > 0 ? pair.slice(0, at).trim() : '';
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      throw invalid(
        server,
        `--header wants "Name: value", got ${JSON.stringify(pair.slice(0, 40))}.`,
        'write the header as Name:value',
      );
    }
    // `${VAR}` keeps secrets out of argv: hosts pass them through the environment instead.
    headers[name] = pair
      .slice(at + 1)
      .trim()
      .replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, v: string) => env[v] ?? '');
  }
  // A header is often an API key: a server that echoes it must not get it shown or stored.
  for (const value of Object.values(headers)) secrets.add(value);
  return headers;
}

function invalid(server: string, message: string, nextStep: string): LatchkeyError {
  return new LatchkeyError(ErrorCode.INVALID_INPUT, message, { server, retryable: false, nextStep });
}
