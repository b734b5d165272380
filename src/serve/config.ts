import { readFileSync } from 'node:fs';

import { ErrorCode, LatchkeyError } from '../errors.js';
import { canonicalServer } from '../credential/key.js';
import type { ClientConfig } from '../oauth/types.js';

/** One upstream MCP server the gateway connects its users to. */
export interface UpstreamConfig {
  /** Short name used in API paths (`/connections/{id}`). */
  id: string;
  /** The MCP server URL; credentials are stored under its canonical form. */
  url: string;
  /** A pre-registered web client at the server's AS. Default: dynamic registration. */
  clientId?: string;
  /** Its secret, read from the environment variable named in the config file (never stored in it). */
  clientSecret?: string;
  /** Scopes to ask for. Default: what the server's challenge and metadata suggest. */
  scopes?: readonly string[];
}

export interface ListenAddress {
  host: string;
  port: number;
}

export const DEFAULT_LISTEN: ListenAddress = { host: '127.0.0.1', port: 8787 };

/** Upstream ids: they appear in URLs and logs, so they are kept short and plain. */
const ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

function invalid(message: string, detail: string): LatchkeyError {
  return new LatchkeyError(ErrorCode.INVALID_INPUT, message, {
    retryable: false,
    next: { kind: 'configure', detail },
  });
}

/** `host:port`, `:port` or `port`; IPv6 hosts in brackets (`[::1]:8787`). */
export function parseListen(text: string): ListenAddress {
  const match = /^(?:(\[[0-9a-fA-F:]+\]|[^:[\]]*):)?(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[2]);
  if (match === null || !Number.isInteger(port) || port > 65_535) {
    throw invalid(`--listen ${JSON.stringify(text)} is not host:port.`, 'use e.g. 127.0.0.1:8787');
  }
  const host = (match[1] ?? '').replace(/^\[|\]$/g, '');
  return { host: host === '' ? DEFAULT_LISTEN.host : host, port };
}

/** One `--upstream <id>=<url>` flag. */
export function parseUpstreamFlag(text: string): UpstreamConfig {
  const at = text.indexOf('=');
  if (at <= 0)
    throw invalid(
      `--upstream ${JSON.stringify(text)} is not <id>=<url>.`,
      'use e.g. notion=https://mcp.notion.com/mcp',
    );
  return upstream({ id: text.slice(0, at), url: text.slice(at + 1) }, '--upstream');
}

/**
 * The config file (docs/serve.md): `{ "upstreams": [ { "id", "url", "client_id"?,
 * "client_secret_env"?, "scopes"? } ] }`. A client secret is named by environment variable
 * so that the file itself never holds one.
 */
export function readConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): UpstreamConfig[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, `cannot read the serve config file ${path}.`, {
      retryable: false,
      next: { kind: 'configure', detail: 'check that it exists and is valid JSON (docs/serve.md)' },
      cause,
    });
  }
  const list = (parsed as { upstreams?: unknown } | null)?.upstreams;
  if (!Array.isArray(list))
    throw invalid(`${path} has no "upstreams" array.`, 'see docs/serve.md for the format');
  return list.map((entry, index) => fileEntry(entry, `${path} upstreams[${index}]`, env));
}

function fileEntry(entry: unknown, where: string, env: NodeJS.ProcessEnv): UpstreamConfig {
  if (typeof entry !== 'object' || entry === null)
    throw invalid(`${where} is not an object.`, 'see docs/serve.md');
  const e = entry as Record<string, unknown>;
  const known = new Set(['id', 'url', 'client_id', 'client_secret_env', 'scopes']);
  const unknown = Object.keys(e).filter((k) => !known.has(k));
  if (unknown.length > 0) {
    const secretHint = unknown.includes('client_secret')
      ? '; put the secret in an environment variable and name it in client_secret_env'
      : '';
    throw invalid(`${where} has unknown fields: ${unknown.join(', ')}.`, `remove them${secretHint}`);
  }
  const text = (name: string): string | undefined => {
    const value = e[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '')
      throw invalid(`${where}.${name} must be a non-empty string.`, 'see docs/serve.md');
    return value;
  };
  const scopes = e['scopes'];
  if (
    scopes !== undefined &&
    (!Array.isArray(scopes) ||
      !scopes.every((s) => typeof s === 'string' && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s)))
  ) {
    throw invalid(`${where}.scopes must be an array of scope strings.`, 'see docs/serve.md');
  }
  const secretEnv = text('client_secret_env');
  const secret = secretEnv === undefined ? undefined : env[secretEnv];
  if (secretEnv !== undefined && (secret === undefined || secret === '')) {
    throw invalid(
      `${where}: the environment variable ${secretEnv} (client_secret_env) is not set.`,
      `set ${secretEnv} to the client secret`,
    );
  }
  const clientId = text('client_id');
  if (secret !== undefined && clientId === undefined)
    throw invalid(`${where} has a client secret but no client_id.`, 'add client_id');
  return upstream(
    {
      id: text('id') ?? '',
      url: text('url') ?? '',
      ...(clientId === undefined ? {} : { clientId }),
      ...(secret === undefined ? {} : { clientSecret: secret }),
      ...(scopes === undefined ? {} : { scopes: scopes as string[] }),
    },
    where,
  );
}

function upstream(config: UpstreamConfig, where: string): UpstreamConfig {
  if (!ID.test(config.id)) {
    throw invalid(
      `${where}: the upstream id ${JSON.stringify(config.id)} is not valid.`,
      'use 1-64 letters, digits, - or _',
    );
  }
  let url: URL;
  try {
    url = new URL(config.url);
  } catch {
    throw invalid(`${where}: the upstream ${config.id} has no valid URL.`, 'give an http(s) URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw invalid(`${where}: the upstream ${config.id} URL must be http(s).`, 'give an http(s) URL');
  }
  return { ...config, url: canonicalServer(config.url) };
}

/** File entries first, then flags; an id given twice is an error, not a silent override. */
export function mergeUpstreams(...lists: readonly UpstreamConfig[][]): UpstreamConfig[] {
  const byId = new Map<string, UpstreamConfig>();
  for (const item of lists.flat()) {
    if (byId.has(item.id))
      throw invalid(`the upstream id ${item.id} is configured twice.`, 'give each upstream its own id');
    byId.set(item.id, item);
  }
  return [...byId.values()];
}

/** The client configuration the OAuth core takes for this upstream. */
export function clientConfigOf(upstream: UpstreamConfig): ClientConfig {
  return {
    clientName: 'latchkey serve',
    ...(upstream.clientId === undefined ? {} : { clientId: upstream.clientId }),
    ...(upstream.clientSecret === undefined ? {} : { clientSecret: upstream.clientSecret }),
  };
}

/**
 * The public base URL (`--public-url`): origin plus an optional path prefix, no query or
 * fragment, without a trailing slash, so `${base}/oauth/callback` is the redirect URI.
 */
export function parsePublicUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(
      `--public-url ${JSON.stringify(text)} is not a URL.`,
      'give the externally visible base URL, e.g. https://mcp-gateway.example.com',
    );
  }
  if (
    (url.protocol !== 'https:' && url.protocol !== 'http:') ||
    url.search !== '' ||
    url.hash !== '' ||
    url.username !== ''
  ) {
    throw invalid(
      `--public-url ${JSON.stringify(text)} must be an http(s) URL without query, fragment or user.`,
      'give the externally visible base URL',
    );
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** An http(s) URL, or undefined for anything else (not a URL, another scheme). */
function httpUrl(text: string): URL | undefined {
  try {
    const url = new URL(text);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The application's page that signs its user in and sends them on to a fresh portal link
 * (`--portal-sign-in-url`): an absolute http(s) URL without user information or fragment.
 */
export function parsePortalSignInUrl(text: string): string {
  const url = httpUrl(text);
  if (url === undefined || url.username !== '' || url.hash !== '') {
    throw invalid(
      `--portal-sign-in-url ${JSON.stringify(text)} must be an http(s) URL without user or fragment.`,
      'give the application\'s page that signs its user in and opens a portal link (docs/serve.md, "The portal")',
    );
  }
  return url.href;
}

/** `--allow-return-to <origin>`: an http(s) origin, nothing after it. */
export function parseReturnToOrigin(text: string): string {
  const url = httpUrl(text);
  if (url === undefined || url.href !== `${url.origin}/`) {
    throw invalid(
      `--allow-return-to ${JSON.stringify(text)} is not an origin.`,
      'give scheme, host and port only, e.g. https://app.example.com',
    );
  }
  return url.origin;
}
