import { Command, CommanderError } from 'commander';

import { isLatchkeyError } from '../errors.js';
import { CredentialManager } from '../lifecycle/manager.js';
import { createLogger } from '../log.js';
import type { CredentialStore } from '../store/contract.js';
import { openSqliteStore } from '../store/sqlite.js';
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
    .action(async (server: string | undefined, opts: { json: boolean }) => {
      await withStore(io, (store) =>
        status(store, io, { ...(server === undefined ? {} : { server }), json: opts.json }),
      );
    });

  program
    .command('token')
    .description('print a valid access token for a server on stdout (refreshing it if needed)')
    .argument('<server>', 'MCP server URL')
    .action(async (server: string) => {
      await withStore(io, async (store) => {
        const manager = new CredentialManager({
          store,
          watch: false,
          proactiveRefresh: false,
          logger: createLogger(),
        });
        try {
          await token(manager, io, server);
        } finally {
          manager.close();
        }
      });
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    exitCode = report(error, io);
  }
  return exitCode;
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
