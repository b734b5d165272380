/**
 * Arguments shared by the commands that talk to an MCP server (proxy, tools, call): the
 * server URL and the extra headers.
 */
import { canonicalServer } from '../credential/key.js';
import { secrets } from '../redact.js';
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
        // The text may be a secret written without its name: never echo it.
        `--header wants "Name: value"; one of them (${pair.length} characters, not shown) has no valid name before a ":".`,
        'write the header as Name:value',
      );
    }
    // `${VAR}` keeps secrets out of argv: hosts pass them through the environment instead.
    const raw = pair.slice(at + 1).trim();
    const value = raw.replace(VARIABLE, (_, v: string) => env[v] ?? '');
    const problem = valueProblem(value);
    if (problem !== undefined) throw badValue(server, name, raw, env, problem);
    headers[name] = value;
  }
  // A header is often an API key: a server that echoes it must not get it shown or stored.
  for (const value of Object.values(headers)) secrets.add(value);
  return headers;
}

const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * What makes a header value unsendable, checked once at start-up instead of failing every
 * request later. CR and LF would split the header (and undici refuses them, echoing the
 * value); NUL and other control characters are refused by servers or mangle logs; fetch
 * sends only Latin-1. A tab is legal inside a field value (RFC 9110 §5.5) and is kept.
 */
function valueProblem(value: string): string | undefined {
  if (/[\r\n]/.test(value)) return 'a line break (CR or LF)';
  if (value.includes('\u0000')) return 'a NUL character';
  // eslint-disable-next-line no-control-regex
  if (/[\u0001-\u0008\u000b-\u001f\u007f-\u009f]/.test(value)) return 'a control character';
  if (/[\u0100-\uffff]/.test(value)) return 'a character outside Latin-1, which HTTP headers cannot carry';
  return undefined;
}

/** Names the header, the variable it came from and the problem; never the value (often a secret). */
function badValue(
  server: string,
  name: string,
  raw: string,
  env: NodeJS.ProcessEnv,
  problem: string,
): LatchkeyError {
  const culprits = [...raw.matchAll(VARIABLE)]
    .map((match) => match[1] ?? '')
    .filter((v) => valueProblem(env[v] ?? '') !== undefined);
  const source = culprits.length === 0 ? '' : ` (from \${${culprits[0]}})`;
  return invalid(
    server,
    `the value of --header ${name}${source} contains ${problem}, so latchkey will not send it. The value is not shown.`,
    'remove line breaks and control characters from the value; a trailing newline from `$(cat file)` or a secret manager is the usual cause',
  );
}

function invalid(server: string, message: string, fix: string): LatchkeyError {
  return new LatchkeyError(ErrorCode.INVALID_INPUT, message, {
    server,
    retryable: false,
    next: { kind: 'configure', detail: fix },
  });
}
