import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

import { canonicalServer } from '../credential/key.js';
import { ErrorCode, LatchkeyError } from '../errors.js';
import { CredentialManager } from '../lifecycle/manager.js';
import type { CredentialManagerOptions } from '../lifecycle/options.js';
import { createLogger, type LogLevel } from '../log.js';
import type { CredentialStore } from '../store/contract.js';
import { createLoginHook, type LoginOptions } from '../login/login.js';
import type { ClientConfig } from '../oauth/types.js';
import { readFileSync } from 'node:fs';

import type { TransportStrategy } from '../mcp/connection.js';
import type { ProxyLoginPolicy } from '../proxy/authorizer.js';
import { serversAwaitingDeviceLogin } from '../proxy/device-agent.js';
import { reconnect } from './commands/reconnect.js';
import { reset } from './commands/reset.js';
import { events } from './commands/events.js';
import { login } from './commands/login.js';
import { logout } from './commands/logout.js';
import { status } from './commands/status.js';
import { token } from './commands/token.js';
import { checkedServer, parseHeaders } from './server-args.js';
import { parseToolArguments } from './tool-arguments.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ExitCode, exitCodeFor } from './exit-codes.js';
import { type CliIO, processIO } from './io.js';
import { cliMessage } from './next-step.js';
import { openCliStore, type StoreAccess } from './open-store.js';
import { createSpinner } from './spinner.js';
import { VERSION } from './version.js';

// The commands that load the MCP SDK, the demo's servers or the discovery chain are
// imported when they run: every start of the CLI (a host spawning `latchkey proxy`, a
// script calling `latchkey token`) pays only for what it uses.
const lazy = {
  call: async () => (await import('./commands/call.js')).call,
  demo: async () => (await import('./commands/demo.js')).demo,
  doctor: async () => (await import('./commands/doctor.js')).doctor,
  proxy: async () => (await import('./commands/proxy.js')).proxy,
  tools: async () => (await import('./commands/tools.js')).tools,
  connectMcpClient: async () => (await import('../mcp/client.js')).connectMcpClient,
};

/**
 * Parse `argv` and run the command. Returns the exit code; never calls process.exit, so it
 * can be tested in-process. Parsing lives here; each command's work lives in commands/.
 */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  let exitCode: number = ExitCode.OK;
  const program = new Command('latchkey')
    .description('OAuth credentials for remote MCP servers: log in once, stay logged in, log out for real.')
    .version(VERSION)
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey demo                                   a one-minute tour, nothing to set up\n  latchkey login https://mcp.example.com/mcp      log in once\n  latchkey status                                 what is stored, and its state\n  latchkey proxy https://mcp.example.com/mcp      in a host config, instead of mcp-remote\n  latchkey logout https://mcp.example.com/mcp     revoke at the server, then forget\n\nExit codes: 0 ok, 1 error, 2 usage, 4 login required, 5 cancelled.\nStore: $LATCHKEY_HOME (default ~/.config/latchkey). Every option: docs/configuration.md.',
    )
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });

  program
    .command('status')
    .description('show stored credentials and their state')
    .argument('[server]', 'only this MCP server URL')
    .option('--json', 'machine-readable output', false)
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey status\n  latchkey status https://mcp.example.com/mcp --json',
    )
    .action(async (server: string | undefined, opts: { json: boolean }) => {
      await withStore(io, async (store, missing) => {
        // Due pending revocations are retried (bounded) before reporting; a store that does
        // not exist yet has none.
        if (missing === undefined) await retryPendingRevocations(store);
        await status(store, io, {
          ...(server === undefined ? {} : { server: canonicalServer(server) }),
          ...(missing === undefined ? {} : { missing }),
          json: opts.json,
        });
      });
    });

  program
    .command('doctor')
    .description(
      'check a server step by step: challenge, metadata, PKCE, registration, revocation, clock, store',
    )
    .argument('<server>', 'MCP server URL')
    .option('--json', 'machine-readable findings', false)
    .addHelpText('after', '\nExample:\n  latchkey doctor https://mcp.example.com/mcp')
    .action(async (server: string, opts: { json: boolean }) => {
      if (!(await (await lazy.doctor())(io, server, opts))) exitCode = ExitCode.ERROR;
    });

  program
    .command('events')
    .description('show the lifecycle event log (logins, refreshes, failures, logouts); never holds secrets')
    .argument('[server]', 'only this MCP server URL')
    .option('--json', 'one JSON object per line', false)
    .option('-f, --follow', 'keep printing new events until interrupted', false)
    .option('-n, --limit <n>', 'how many past events to show', parseCount, 50)
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey events https://mcp.example.com/mcp\n  latchkey events --follow --json',
    )
    .action(async (server: string | undefined, opts: { json: boolean; follow: boolean; limit: number }) => {
      // --follow waits for events a login may write later, so it needs the real store.
      await withStore(
        io,
        (store) =>
          events(store, io, {
            ...opts,
            ...(server === undefined ? {} : { server: canonicalServer(server) }),
          }),
        opts.follow ? 'write' : 'read',
      );
    });

  program
    .command('token')
    .description('print a valid access token for a server on stdout (refreshing it if needed)')
    .argument('<server>', 'MCP server URL')
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey token https://mcp.example.com/mcp\n  curl -H "Authorization: Bearer $(latchkey token https://mcp.example.com/mcp)" https://mcp.example.com/mcp',
    )
    .action(async (server: string) => {
      await withManager(
        io,
        () => ({}),
        (manager) => token(manager, io, server),
      );
    });

  program
    .command('login')
    .description(
      'log in to a remote MCP server (browser, or device code when headless) and store the credential',
    )
    .argument('<server>', 'MCP server URL')
    .option('--device', 'use the device flow (a code to enter on another device)')
    .option('--browser', 'use the browser even where latchkey would pick the device flow')
    .option('--client-credentials', 'machine-to-machine: client id + secret from LATCHKEY_CLIENT_SECRET')
    .option('--client-id <id>', 'a client pre-registered at the authorization server')
    .option('--client-metadata-url <url>', 'HTTPS URL of your client ID metadata document')
    .option('--scope <scopes>', 'space-separated scopes to request (default: what the server advertises)')
    .option('--port <port>', 'fixed loopback redirect port', parsePort)
    .option('--auth-param <name=value>', 'extra authorization parameter (IdP quirk), repeatable', collect, [])
    .option('--offline-access', 'ask for offline_access when the authorization server supports it')
    .option('--no-resource', 'do not send the RFC 8707 resource parameter (Microsoft Entra v2)')
    .option('--disable-resource-parameter', 'the same as --no-resource (the name `proxy` uses)')
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey login https://mcp.example.com/mcp\n  latchkey login https://mcp.example.com/mcp --device\n  LATCHKEY_CLIENT_SECRET=... latchkey login https://mcp.example.com/mcp --client-credentials --client-id my-service',
    )
    .action(async (server: string, opts: LoginFlags) => {
      checkedServer(server); // a typo must not create the store on its way to failing
      // One switch, two spellings: `login` and `proxy` each accept the other's.
      if (opts.disableResourceParameter === true) opts.resource = false;
      const scopes = opts.scope?.split(/\s+/).filter(Boolean);
      const spinner = createSpinner(io);
      // Each prompt (browser URL, device code) is followed by a wait for the user.
      const notify = (text: string): void => {
        spinner.print(text);
        spinner.start(
          /enter the code/i.test(text)
            ? 'Waiting for you to approve the code on the other device...'
            : 'Waiting for you to finish signing in in the browser...',
        );
      };
      try {
        await withManager(
          io,
          (store) => ({
            sendResource: opts.resource,
            acquire: createLoginHook({ ...loginOptions(store, io, opts), notify }),
          }),
          async (manager, store) => {
            const done = await manager
              .login(server, scopes === undefined ? {} : { scopes })
              .finally(() => spinner.stop());
            await login(done, store, io);
          },
          'write',
        );
      } finally {
        spinner.stop();
      }
    });

  program
    .command('logout')
    .description('revoke the tokens at the authorization server (RFC 7009) and delete them locally')
    .argument('[server]', 'MCP server URL')
    .option('--all', 'log out of every server with a stored credential', false)
    .option('--strict', 'keep the local credential if revocation fails, so you can retry', false)
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey logout https://mcp.example.com/mcp\n  latchkey logout --all --strict',
    )
    .action(async (server: string | undefined, opts: { strict: boolean; all: boolean }) => {
      if ((server === undefined) === !opts.all) {
        throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'name one server, or pass --all (not both).', {
          retryable: false,
        });
      }
      await withManager(
        io,
        () => ({}),
        async (manager, store) => {
          const servers =
            server !== undefined
              ? [server]
              : [
                  ...new Set([
                    ...(await store.listCredentials()).map((c) => c.key.server),
                    ...(await serversAwaitingDeviceLogin(store)),
                  ]),
                ];
          if (servers.length === 0) io.err('No stored credentials; nothing to do.\n');
          for (const each of servers) await logout(manager, store, io, each, opts);
        },
      );
    });

  program
    .command('reset')
    .description('discard the store (credentials, its key file and keyring entry) without revoking anything')
    .option('--yes', 'really delete', false)
    .addHelpText(
      'after',
      '\nFor a store whose key is lost (STORE_KEY_MISMATCH). Prefer `latchkey logout --all`, which revokes.\n\nExample:\n  latchkey reset --yes',
    )
    .action(async (opts: { yes: boolean }) => {
      await reset(io, opts);
    });

  program
    .command('demo')
    .description(
      'a one-minute tour on this machine: login, a tool call, a silent refresh, status, a real logout',
    )
    .option('--by-hand', 'sign in yourself, in a browser on this machine (default: the demo does it)')
    .option('--auto', 'the demo signs in for you (the default; kept for scripts that pass it)')
    .option('--token-seconds <n>', 'lifetime of the demo access tokens', parseSeconds, 5)
    .addHelpText(
      'after',
      '\nRuns a real OAuth authorization server and MCP server on 127.0.0.1 and a throw-away store;\nnothing is left behind.\n\nExamples:\n  latchkey demo\n  latchkey demo --by-hand',
    )
    .action(async (opts: { auto?: boolean; byHand?: boolean; tokenSeconds: number }) => {
      if (opts.auto === true && opts.byHand === true) {
        throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'pick one of --auto and --by-hand.', {
          retryable: false,
        });
      }
      await (
        await lazy.demo()
      )(io, { byHand: opts.byHand === true, tokenSeconds: Math.round(opts.tokenSeconds) });
    });

  program
    .command('proxy')
    .description('stdio MCP proxy to a remote server, for host configs (a drop-in for mcp-remote)')
    .argument('<server>', 'MCP server URL')
    .argument('[callback-port]', 'fixed loopback redirect port (as mcp-remote takes it)', parsePort)
    .option(
      '--header <name:value>',
      'extra request header, repeatable; ${VAR} expands from the environment',
      collect,
      [],
    )
    .option(
      '--transport <strategy>',
      'auto | streamable-http | sse (mcp-remote names http-first, http-only, sse-only, sse-first work too)',
      parseTransport,
      'auto' as TransportStrategy,
    )
    .addOption(
      new Option(
        '--protocol <mode>',
        'auto: bridge a 2025-era host to a server that speaks only 2026-07-28; legacy: never',
      )
        .choices(['auto', 'legacy'])
        .default('auto'),
    )
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
    .option('--client-id <id>', 'a client pre-registered at the authorization server')
    .option(
      '--static-oauth-client-info <json|@file>',
      'pre-registered client as JSON {"client_id", "client_secret"?}',
    )
    .option('--client-metadata-url <url>', 'HTTPS URL of your client ID metadata document')
    .option('--scope <scopes>', 'space-separated scopes to request')
    .option('--port <port>', 'fixed loopback redirect port', parsePort)
    .option('--host <host>', 'redirect URI host: 127.0.0.1 (default) or localhost', parseRedirectHost)
    .option('--callback-path <path>', 'redirect URI path (default /callback)')
    .option('--resource <uri>', 'send this RFC 8707 resource instead of the one the server names')
    .option('--disable-resource-parameter', 'do not send RFC 8707 resource (Microsoft Entra v2)', false)
    .option('--no-resource', 'the same as --disable-resource-parameter (the name `login` uses)')
    .option('--offline-access', 'ask for offline_access when the authorization server supports it')
    .option('--auth-param <name=value>', 'extra authorization parameter (IdP quirk), repeatable', collect, [])
    .option('--auth-timeout <seconds>', 'how long a login may take', parseSeconds, 300)
    .option('--timeout <seconds>', 'deadline for each MCP request', parseSeconds, 300)
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
      // `--no-resource` sets resource to false; `--resource <uri>` to a string.
      if (opts.resource === false) opts.disableResourceParameter = true;
      const resourceUri = typeof opts.resource === 'string' ? opts.resource : undefined;
      const scopes = opts.scope?.split(/\s+/).filter(Boolean);
      const port = opts.port ?? callbackPort;
      const client = {
        ...staticClientInfo(opts.staticOauthClientInfo),
        ...(opts.clientId === undefined ? {} : { clientId: opts.clientId }),
      };
      const base = loginOptionsWithoutStore(io, {
        ...opts,
        resource: !opts.disableResourceParameter,
        ...(port === undefined ? {} : { port }),
      });
      await (
        await lazy.proxy()
      )(io, {
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
      });
    });

  program
    .command('tools')
    .description('list the tools of a remote MCP server, with your stored credential')
    .argument('<server>', 'MCP server URL')
    .option('--json', 'the tools/list result, schemas included', false)
    .option('--header <name:value>', 'extra request header, repeatable', collect, [])
    .option(
      '--transport <strategy>',
      'auto | streamable-http | sse',
      parseTransport,
      'auto' as TransportStrategy,
    )
    .option('--timeout <seconds>', 'deadline for each MCP request', parseSeconds, 60)
    .addHelpText(
      'after',
      "\nNever starts a login: without a credential it exits 4 and names the login command.\n\nExamples:\n  latchkey tools https://mcp.example.com/mcp\n  latchkey tools https://mcp.example.com/mcp --json | jq '.tools[].name'",
    )
    .action(async (server: string, opts: ClientFlags) => {
      const tools = await lazy.tools();
      await withClient(io, server, opts, (client, url) => tools(client, io, url, opts));
    });

  program
    .command('call')
    .description('call one tool of a remote MCP server and print its result')
    .argument('<server>', 'MCP server URL')
    .argument('<tool>', 'tool name (see `latchkey tools`)')
    .argument('[arguments]', 'the arguments as a JSON object, or - to read them from stdin', '{}')
    .option('--json', 'print the whole tools/call result as JSON', false)
    .option('--header <name:value>', 'extra request header, repeatable', collect, [])
    .option(
      '--transport <strategy>',
      'auto | streamable-http | sse',
      parseTransport,
      'auto' as TransportStrategy,
    )
    .option('--timeout <seconds>', 'deadline for each MCP request', parseSeconds, 60)
    .addHelpText(
      'after',
      '\nText content goes to stdout; a result flagged isError exits 1. Never starts a login.\nThe arguments are checked before anything connects: malformed JSON exits 2.\n\nExamples:\n  latchkey call https://mcp.example.com/mcp echo \'{"text": "hi"}\'\n  echo \'{"text": "hi"}\' | latchkey call https://mcp.example.com/mcp echo - --json',
    )
    .action(async (server: string, tool: string, args: string, opts: ClientFlags) => {
      const argumentsJson = args === '-' ? await readAll(io.stdin ?? process.stdin) : args;
      const toolArguments = parseToolArguments(checkedServer(server), argumentsJson);
      const call = await lazy.call();
      await withClient(io, server, opts, (client, url) =>
        call(client, io, url, { tool, arguments: toolArguments, json: opts.json }),
      );
    });

  program
    .command('reconnect')
    .description('make running proxies drop their sessions and connect again with the current credential')
    .argument('[server]', 'only this MCP server URL (default: every server)')
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey reconnect\n  latchkey reconnect https://mcp.example.com/mcp',
    )
    .action(async (server: string | undefined) => {
      await withStore(io, async (store, missing) => {
        // No store yet: no proxy can be running against it.
        if (missing === undefined) await reconnect(store, io, server);
        else io.err('No credentials yet, so no latchkey proxy to reconnect; nothing to do.\n');
      });
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    exitCode = report(error, io);
  }
  return exitCode;
}

interface ClientFlags {
  json: boolean;
  header: string[];
  transport: TransportStrategy;
  timeout: number;
}

/** Connect an authenticated SDK client for one command, and close everything after. */
async function withClient(
  io: CliIO,
  server: string,
  opts: ClientFlags,
  run: (client: Client, server: string) => Promise<void>,
): Promise<void> {
  const url = checkedServer(server);
  const headers = parseHeaders(opts.header, io.env, url);
  await withManager(
    io,
    () => ({}),
    async (manager) => {
      const client = await (
        await lazy.connectMcpClient()
      )(url, {
        manager,
        transport: opts.transport,
        headers,
        requestTimeoutMs: opts.timeout * 1000,
        clientInfo: { name: 'latchkey', version: VERSION },
      });
      try {
        await run(client, url);
      } finally {
        await client.close().catch(() => undefined);
      }
    },
  );
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

interface LoginFlags {
  device?: boolean;
  browser?: boolean;
  clientCredentials?: boolean;
  clientId?: string;
  clientMetadataUrl?: string;
  scope?: string;
  port?: number;
  authParam?: string[];
  offlineAccess?: boolean;
  resource: boolean;
  disableResourceParameter?: boolean;
}

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

function loginOptions(store: CredentialStore, io: CliIO, opts: LoginFlags): LoginOptions {
  return { store, ...loginOptionsWithoutStore(io, opts) };
}

function loginOptionsWithoutStore(
  io: CliIO,
  opts: LoginFlags,
): Omit<LoginOptions, 'store'> & { client: ClientConfig } {
  const secret = io.env['LATCHKEY_CLIENT_SECRET'];
  const client: ClientConfig = {
    ...(opts.clientId === undefined ? {} : { clientId: opts.clientId }),
    ...(secret === undefined || secret === '' ? {} : { clientSecret: secret }),
    ...(opts.clientMetadataUrl === undefined ? {} : { clientMetadataUrl: opts.clientMetadataUrl }),
  };
  const flow = opts.clientCredentials
    ? 'client-credentials'
    : opts.device
      ? 'device'
      : opts.browser
        ? 'browser'
        : 'auto';
  return {
    flow,
    client,
    notify: io.err,
    ...(opts.port === undefined ? {} : { redirectPort: opts.port }),
    quirks: {
      omitResource: !opts.resource,
      offlineAccess: opts.offlineAccess === true,
      extraAuthorizationParams: parseParams(opts.authParam ?? []),
    },
  };
}

function parseParams(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) {
      throw new LatchkeyError(
        ErrorCode.INVALID_INPUT,
        `--auth-param wants name=value, got ${JSON.stringify(pair)}.`,
        {
          retryable: false,
        },
      );
    }
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
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

function parseTransport(value: string): TransportStrategy {
  const strategy = TRANSPORTS[value];
  if (strategy === undefined)
    throw new InvalidArgumentError(`use one of ${Object.keys(TRANSPORTS).join(', ')}`);
  return strategy;
}

function parseLoginPolicy(value: string): ProxyLoginPolicy {
  if (value !== 'auto' && value !== 'never') throw new InvalidArgumentError('use auto or never');
  return value;
}

function parseRedirectHost(value: string): '127.0.0.1' | 'localhost' {
  if (value !== '127.0.0.1' && value !== 'localhost') {
    throw new InvalidArgumentError('latchkey listens on loopback only: use 127.0.0.1 or localhost');
  }
  return value;
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('not a positive number of seconds');
  return n;
}

/** A message size limit in MiB: at least 1 (an MCP handshake alone can near 100 KiB). */
function parseMebibytes(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 1 || n > 4096)
    throw new InvalidArgumentError('not a size from 1 to 4096 MiB');
  return n;
}

/** mcp-remote's `--static-oauth-client-info`: inline JSON or `@file`. */
function staticClientInfo(value: string | undefined): ClientConfig {
  if (value === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.startsWith('@') ? readFileSync(value.slice(1), 'utf8') : value);
  } catch (error) {
    throw new LatchkeyError(
      ErrorCode.INVALID_INPUT,
      `--static-oauth-client-info is not readable JSON (${(error as Error).message}).`,
      {
        retryable: false,
        nextStep: 'pass {"client_id": "..."} or @path/to/file.json',
      },
    );
  }
  const info = (parsed ?? {}) as { client_id?: unknown; client_secret?: unknown };
  if (typeof info.client_id !== 'string' || info.client_id === '') {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, '--static-oauth-client-info needs a "client_id".', {
      retryable: false,
      nextStep: 'pass {"client_id": "..."}',
    });
  }
  return {
    clientId: info.client_id,
    ...(typeof info.client_secret === 'string' && info.client_secret !== ''
      ? { clientSecret: info.client_secret }
      : {}),
  };
}

/** The proxy logs at info by default (hosts keep stderr as a log); LATCHKEY_LOG_LEVEL overrides. */
function proxyLogLevel(env: NodeJS.ProcessEnv): LogLevel {
  const level = env['LATCHKEY_LOG_LEVEL'];
  return level === 'debug' || level === 'info' || level === 'warn' || level === 'error' || level === 'silent'
    ? level
    : 'info';
}

/** A repeatable option: each use adds one value (unlike variadic options, it never eats the URL). */
function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('not a count');
  return n;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new InvalidArgumentError('not a port number');
  return port;
}

/** How long a CLI command may spend retrying pending revocations (docs/operations.md). */
const CLI_REVOCATION_BUDGET_MS = 3000;

/**
 * A short-lived manager for one command: no store watch and no proactive timers, which only
 * pay off in long-running processes.
 */
async function withManager(
  io: CliIO,
  extra: (store: CredentialStore) => Partial<CredentialManagerOptions>,
  run: (manager: CredentialManager, store: CredentialStore) => Promise<void>,
  access: StoreAccess = 'read',
): Promise<void> {
  await withStore(
    io,
    async (store) => {
      const manager = cliManager(store, extra(store));
      try {
        await run(manager, store);
      } finally {
        // A refresh started by something that outlived the command (an SDK transport's GET
        // stream) must land in the store before the process exits.
        await manager.settle();
        manager.close();
      }
    },
    access,
  );
}

/** A manager for one command: no watch, no proactive refresh, a short revocation pass. */
function cliManager(
  store: CredentialStore,
  extra: Partial<CredentialManagerOptions> = {},
): CredentialManager {
  return new CredentialManager({
    store,
    watch: false,
    proactiveRefresh: false,
    // Retrying pending revocations must not hold up a command for long.
    revocationRetry: { passBudgetMs: CLI_REVOCATION_BUDGET_MS },
    logger: createLogger(),
    ...extra,
  });
}

/** A manager's start-up pass over the pending revocations, within the CLI's budget. */
async function retryPendingRevocations(store: CredentialStore): Promise<void> {
  const manager = cliManager(store);
  await manager.settle();
  manager.close();
}

async function withStore(
  io: CliIO,
  run: (store: CredentialStore, missing: string | undefined) => Promise<void>,
  access: StoreAccess = 'read',
): Promise<void> {
  const { store, missing } = await openCliStore(io, access);
  try {
    await run(store, missing);
  } finally {
    await store.close();
  }
}

function report(error: unknown, io: CliIO): number {
  if (error instanceof CommanderError) {
    // Commander already printed its message (help and version exit 0).
    return error.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
  }
  // A LatchkeyError's message is already safe; anything else may quote the network.
  io.err(`latchkey: ${cliMessage(error)}\n`);
  return exitCodeFor(error);
}
