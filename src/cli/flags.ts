/**
 * Flags more than one command takes, and the parsers behind every flag value. Each command
 * declares its own flags in its `*.command.ts`; what two commands share is built here once,
 * so both spell and check it alike. Nothing here loads the store, the MCP SDK or a login:
 * every start of the CLI pays for this module.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';

import type { TransportStrategy } from '../mcp/connection.js';
import type { ProxyLoginPolicy } from '../proxy/authorizer.js';

/** What `--header`, `--transport` and `--timeout` give `tools` and `call`. */
export interface ConnectionFlags {
  header: string[];
  transport: TransportStrategy;
  timeout: number;
}

/** The block `tools` and `call` share: how to reach the server, and how long to wait. */
export function addConnectionFlags(command: Command): Command {
  return command
    .addOption(headerOption('extra request header, repeatable'))
    .addOption(transportOption('auto | streamable-http | sse'))
    .addOption(timeoutOption(60));
}

/** `--header Name:value`, repeatable. */
export function headerOption(description: string): Option {
  return new Option('--header <name:value>', description).argParser(collect).default([]);
}

export function transportOption(description: string): Option {
  return new Option('--transport <strategy>', description)
    .argParser(parseTransport)
    .default('auto' as TransportStrategy);
}

/** `--timeout <seconds>`: the deadline of each MCP request. */
export function timeoutOption(seconds: number): Option {
  return new Option('--timeout <seconds>', 'deadline for each MCP request')
    .argParser(parseSeconds)
    .default(seconds);
}

/** `--json`: machine-readable output on stdout; each command says what it prints. */
export function jsonOption(description: string): Option {
  return new Option('--json', description).default(false);
}

// The login flags `login` and `proxy` word alike. Where their help differs (--device,
// --scope, --client-credentials), each command declares its own.

export function clientIdOption(): Option {
  return new Option('--client-id <id>', 'a client pre-registered at the authorization server');
}

export function workloadTokenFileOption(): Option {
  return new Option(
    '--workload-token-file <path>',
    'workload identity: no user, no secret; the JWT in this file (re-read each time) is exchanged with --client-id',
  );
}

export function clientMetadataUrlOption(): Option {
  return new Option('--client-metadata-url <url>', 'HTTPS URL of your client ID metadata document');
}

export function portOption(): Option {
  return new Option('--port <port>', 'fixed loopback redirect port').argParser(parsePort);
}

export function authParamOption(): Option {
  return new Option('--auth-param <name=value>', 'extra authorization parameter (IdP quirk), repeatable')
    .argParser(collect)
    .default([]);
}

/** `--no-dpop`: commander sets `dpop: false`; left out, `dpop` is true. */
export function noDpopOption(): Option {
  return new Option(
    '--no-dpop',
    'bearer tokens even where the server and its authorization server take DPoP (RFC 9449)',
  );
}

export function offlineAccessOption(): Option {
  return new Option('--offline-access', 'ask for offline_access when the authorization server supports it');
}

/** A repeatable option: each use adds one value (unlike variadic options, it never eats the URL). */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const TRANSPORTS: Record<string, TransportStrategy> = {
  auto: 'auto',
  'http-first': 'auto',
  'streamable-http': 'streamable-http',
  'http-only': 'streamable-http',
  sse: 'sse',
  'sse-only': 'sse',
  'sse-first': 'sse',
};

/** Our names, and mcp-remote's, for the transport strategies. */
export function parseTransport(value: string): TransportStrategy {
  const strategy = TRANSPORTS[value];
  if (strategy === undefined)
    throw new InvalidArgumentError(`use one of ${Object.keys(TRANSPORTS).join(', ')}`);
  return strategy;
}

export function parseLoginPolicy(value: string): ProxyLoginPolicy {
  if (value !== 'auto' && value !== 'never') throw new InvalidArgumentError('use auto or never');
  return value;
}

export function parseRedirectHost(value: string): '127.0.0.1' | 'localhost' {
  if (value !== '127.0.0.1' && value !== 'localhost') {
    throw new InvalidArgumentError('latchkey listens on loopback only: use 127.0.0.1 or localhost');
  }
  return value;
}

export function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('not a positive number of seconds');
  return n;
}

/**
 * A lease TTL: at least 1 s. A lease is extended every third of it while its refresh runs, so
 * a TTL of milliseconds would be a store write per few milliseconds per refresh.
 */
export function parseLeaseSeconds(value: string): number {
  const n = parseSeconds(value);
  if (n < 1) throw new InvalidArgumentError('a lease lasts at least 1 second');
  return n;
}

/** A message size limit in MiB: at least 1 (an MCP handshake alone can near 100 KiB). */
export function parseMebibytes(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 1 || n > 4096)
    throw new InvalidArgumentError('not a size from 1 to 4096 MiB');
  return n;
}

export function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('not a count');
  return n;
}

export function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new InvalidArgumentError('not a port number');
  return port;
}
