import { Command, CommanderError, InvalidArgumentError } from 'commander';

import { canonicalServer } from '../credential/key.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import { CredentialManager } from '../lifecycle/manager.js';
import type { CredentialManagerOptions } from '../lifecycle/options.js';
import { createLogger } from '../log.js';
import type { CredentialStore } from '../store/contract.js';
import { openSqliteStore } from '../store/sqlite.js';
import { createLoginHook, type LoginOptions } from '../oauth/login.js';
import type { ClientConfig } from '../oauth/types.js';
import { doctor } from './commands/doctor.js';
import { events } from './commands/events.js';
import { login } from './commands/login.js';
import { logout } from './commands/logout.js';
import { status } from './commands/status.js';
import { token } from './commands/token.js';
import { ExitCode, exitCodeFor } from './exit-codes.js';
import { type CliIO, processIO } from './io.js';
import { VERSION } from './version.js';

/**
 * Parse `argv` and run the command. Returns the exit code; never calls process.exit, so it
 * can be tested in-process. Parsing lives here; each command's work lives in commands/.
 */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  let exitCode: number = ExitCode.OK;
  const program = new Command('latchkey')
    .description('OAuth credentials for remote MCP servers: log in once, stay logged in, log out for real.')
    .version(VERSION)
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
      await withStore(io, (store) =>
        status(store, io, { ...(server === undefined ? {} : { server }), json: opts.json }),
      );
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
      if (!(await doctor(io, server, opts))) exitCode = ExitCode.ERROR;
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
      await withStore(io, (store) =>
        events(store, io, { ...opts, ...(server === undefined ? {} : { server: canonicalServer(server) }) }),
      );
    });

  program
    .command('token')
    .description('print a valid access token for a server on stdout (refreshing it if needed)')
    .argument('<server>', 'MCP server URL')
    .addHelpText(
      'after',
      '\nExample:\n  curl -H "Authorization: Bearer $(latchkey token https://mcp.example.com/mcp)" https://mcp.example.com/mcp',
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
    .option('--auth-param <name=value...>', 'extra authorization parameter (IdP quirk), repeatable')
    .option('--offline-access', 'ask for offline_access when the authorization server supports it')
    .option('--no-resource', 'do not send the RFC 8707 resource parameter (Microsoft Entra v2)')
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey login https://mcp.example.com/mcp\n  latchkey login https://mcp.example.com/mcp --device\n  LATCHKEY_CLIENT_SECRET=... latchkey login https://mcp.example.com/mcp --client-credentials --client-id my-service',
    )
    .action(async (server: string, opts: LoginFlags) => {
      const scopes = opts.scope?.split(/\s+/).filter(Boolean);
      await withManager(
        io,
        (store) => ({ sendResource: opts.resource, acquire: createLoginHook(loginOptions(store, io, opts)) }),
        (manager, store) => login(manager, store, io, server, scopes === undefined ? {} : { scopes }),
      );
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
              : [...new Set((await store.listCredentials()).map((c) => c.key.server))];
          if (servers.length === 0) io.err('No stored credentials; nothing to do.\n');
          for (const each of servers) await logout(manager, io, each, opts);
        },
      );
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    exitCode = report(error, io);
  }
  return exitCode;
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
}

function loginOptions(store: CredentialStore, io: CliIO, opts: LoginFlags): LoginOptions {
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
    store,
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

/**
 * A short-lived manager for one command: no store watch and no proactive timers, which only
 * pay off in long-running processes.
 */
async function withManager(
  io: CliIO,
  extra: (store: CredentialStore) => Partial<CredentialManagerOptions>,
  run: (manager: CredentialManager, store: CredentialStore) => Promise<void>,
): Promise<void> {
  await withStore(io, async (store) => {
    const manager = new CredentialManager({
      store,
      watch: false,
      proactiveRefresh: false,
      logger: createLogger(),
      ...extra(store),
    });
    try {
      await run(manager, store);
    } finally {
      manager.close();
    }
  });
}

async function withStore(io: CliIO, run: (store: CredentialStore) => Promise<void>): Promise<void> {
  const store = await openSqliteStore({ env: io.env });
  if (store.security.warning !== undefined) io.err(`latchkey: warning: ${store.security.warning}\n`);
  try {
    await run(store);
  } finally {
    await store.close();
  }
}

function report(error: unknown, io: CliIO): number {
  if (error instanceof CommanderError) {
    // Commander already printed its message (help and version exit 0).
    return error.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
  }
  io.err(`latchkey: ${isLatchkeyError(error) ? error.message : String(error)}\n`);
  return exitCodeFor(error);
}
