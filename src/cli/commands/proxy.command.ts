import { type Command, Option } from 'commander';

import type { LogLevel } from '../../log.js';
import type { TransportStrategy } from '../../mcp/connection.js';
import type { ProxyLoginPolicy } from '../../proxy/authorizer.js';
import type { CliContext } from '../context.js';
import {
  authParamOption,
  clientIdOption,
  workloadTokenFileOption,
  clientMetadataUrlOption,
  headerOption,
  noDpopOption,
  offlineAccessOption,
  parseLoginPolicy,
  parseMebibytes,
  parsePort,
  parseRedirectHost,
  parseSeconds,
  portOption,
  timeoutOption,
  transportOption,
} from '../flags.js';
import type { CliIO } from '../io.js';
import { type LoginFlags, loginOptionsFromFlags, scopeList, staticClientInfo } from '../login-flags.js';
import type { ProxyCommandOptions } from './proxy.js';

interface ProxyFlags extends Omit<LoginFlags, 'resource' | 'disableResourceParameter'> {
  header?: string[];
  transport: TransportStrategy;
  protocol: 'auto' | 'legacy';
  login: ProxyLoginPolicy;
  staticOauthClientInfo?: string;
  host?: '127.0.0.1' | 'localhost';
  callbackPath?: string;
  resource?: string | false;
  disableResourceParameter: boolean;
  authTimeout: number;
  timeout: number;
  maxMessageSize: number;
  allowHttp?: boolean;
  debug: boolean;
  silent: boolean;
  logFile?: string;
  loginAgent?: boolean;
}

export function register(program: Command, { io }: CliContext): void {
  const command = program
    .command('proxy')
    .description('stdio MCP proxy to a remote server, for host configs (a drop-in for mcp-remote)')
    .argument('<server>', 'MCP server URL')
    .argument('[callback-port]', 'fixed loopback redirect port (as mcp-remote takes it)', parsePort)
    .addOption(headerOption('extra request header, repeatable; ${VAR} expands from the environment'))
    .addOption(
      transportOption(
        'auto | streamable-http | sse (mcp-remote names http-first, http-only, sse-only, sse-first work too)',
      ),
    )
    .addOption(
      new Option(
        '--protocol <mode>',
        'auto: bridge a 2025-era host to a server that speaks only 2026-07-28; legacy: never',
      )
        .choices(['auto', 'legacy'])
        .default('auto'),
    );
  addLoginFlags(command)
    .option('--auth-timeout <seconds>', 'how long a login may take', parseSeconds, 300)
    .addOption(timeoutOption(300))
    .option('--max-message-size <MiB>', 'largest message accepted from the server', parseMebibytes, 32)
    .option(
      '--allow-http',
      'accepted for mcp-remote compatibility; plain http works for loopback servers only',
    )
    .option('--debug', 'debug logging on stderr', false)
    .option('--silent', 'log errors only', false)
    .option('--log-file <path>', 'also append log lines to this file (created 0600)')
    .addOption(new Option('--login-agent', 'internal: run as the detached device-login agent').hideHelp())
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey proxy https://mcp.example.com/mcp\n  latchkey proxy https://mcp.example.com/mcp --device --timeout 120\n  latchkey proxy https://mcp.example.com/mcp --header "X-Tenant: ${TENANT}"\n\nstdout carries MCP messages only; everything else goes to stderr.',
    )
    .action(async (server: string, callbackPort: number | undefined, opts: ProxyFlags) => {
      const options = proxyOptions(io, server, callbackPort, opts);
      const { proxy } = await import('./proxy.js');
      await proxy(io, options);
    });
}

/** How the proxy logs in, and with which client: mcp-remote's names and latchkey's. */
function addLoginFlags(command: Command): Command {
  return command
    .option(
      '--login <policy>',
      'auto: log in when needed; never: tell the host to run `latchkey login`',
      parseLoginPolicy,
      'auto',
    )
    .option(
      '--client-credentials',
      'machine-to-machine: get tokens with the client id + LATCHKEY_CLIENT_SECRET, no user',
    )
    .option('--device', 'log in with the device flow (a code to enter on another device)')
    .option('--browser', 'log in with the browser even where latchkey would pick the device flow')
    .addOption(clientIdOption())
    .addOption(workloadTokenFileOption())
    .option(
      '--static-oauth-client-info <json|@file>',
      'pre-registered client as JSON {"client_id", "client_secret"?}',
    )
    .addOption(clientMetadataUrlOption())
    .option('--scope <scopes>', 'space-separated scopes to request')
    .addOption(portOption())
    .option('--host <host>', 'redirect URI host: 127.0.0.1 (default) or localhost', parseRedirectHost)
    .option('--callback-path <path>', 'redirect URI path (default /callback)')
    .option('--resource <uri>', 'send this RFC 8707 resource instead of the one the server names')
    .option('--disable-resource-parameter', 'do not send RFC 8707 resource (Microsoft Entra v2)', false)
    .option('--no-resource', 'the same as --disable-resource-parameter (the name `login` uses)')
    .addOption(offlineAccessOption())
    .addOption(noDpopOption())
    .addOption(authParamOption());
}

/** The flags as the proxy's options; everything is checked here, before anything is opened. */
function proxyOptions(
  io: CliIO,
  server: string,
  callbackPort: number | undefined,
  opts: ProxyFlags,
): ProxyCommandOptions {
  // `--no-resource` sets resource to false; `--resource <uri>` to a string.
  if (opts.resource === false) opts.disableResourceParameter = true;
  const resourceUri = typeof opts.resource === 'string' ? opts.resource : undefined;
  const scopes = scopeList(opts.scope);
  const port = opts.port ?? callbackPort;
  const client = {
    ...staticClientInfo(opts.staticOauthClientInfo),
    ...(opts.clientId === undefined ? {} : { clientId: opts.clientId }),
  };
  const base = loginOptionsFromFlags(io, {
    ...opts,
    resource: !opts.disableResourceParameter,
    ...(port === undefined ? {} : { port }),
  });
  return {
    server,
    headers: opts.header ?? [],
    transport: opts.transport,
    protocol: opts.protocol,
    login: opts.login,
    loginOptions: {
      ...base,
      client: { ...base.client, ...client },
      ...(opts.host === undefined ? {} : { redirectHost: opts.host }),
      ...(opts.callbackPath === undefined ? {} : { redirectPath: opts.callbackPath }),
      timeoutMs: opts.authTimeout * 1000,
      quirks: { ...base.quirks, ...(resourceUri === undefined ? {} : { resource: resourceUri }) },
    },
    ...(scopes === undefined ? {} : { scopes }),
    sendResource: !opts.disableResourceParameter,
    requestTimeoutMs: opts.timeout * 1000,
    maxMessageBytes: opts.maxMessageSize * 1024 * 1024,
    loginTimeoutMs: opts.authTimeout * 1000,
    logLevel: opts.debug ? 'debug' : opts.silent ? 'error' : proxyLogLevel(io.env),
    ...(opts.logFile === undefined ? {} : { logFile: opts.logFile }),
    ...(opts.loginAgent === true ? { loginAgent: true } : {}),
  };
}

/** The proxy logs at info by default (hosts keep stderr as a log); LATCHKEY_LOG_LEVEL overrides. */
function proxyLogLevel(env: NodeJS.ProcessEnv): LogLevel {
  const level = env['LATCHKEY_LOG_LEVEL'];
  return level === 'debug' || level === 'info' || level === 'warn' || level === 'error' || level === 'silent'
    ? level
    : 'info';
}
