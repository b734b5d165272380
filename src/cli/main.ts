import { Command, CommanderError } from 'commander';

import { register as call } from './commands/call.command.js';
import { register as demo } from './commands/demo.command.js';
import { register as doctor } from './commands/doctor.command.js';
import { register as events } from './commands/events.command.js';
import { register as login } from './commands/login.command.js';
import { register as logout } from './commands/logout.command.js';
import { register as proxy } from './commands/proxy.command.js';
import { register as reconnect } from './commands/reconnect.command.js';
import { register as refresher } from './commands/refresher.command.js';
import { register as reset } from './commands/reset.command.js';
import { register as serve } from './commands/serve.command.js';
import { register as status } from './commands/status.command.js';
import { register as storeCommand } from './commands/store.command.js';
import { register as token } from './commands/token.command.js';
import { register as tools } from './commands/tools.command.js';
import type { CliContext } from './context.js';
import { ExitCode, exitCodeFor } from './exit-codes.js';
import { type CliIO, processIO } from './io.js';
import { cliMessage } from './next-step.js';
import { VERSION } from './version.js';

/**
 * The commands, in the order `latchkey --help` lists them. Each `*.command.ts` declares its
 * own flags and imports its work module only when it runs, so every start of the CLI (a host
 * spawning `latchkey proxy`, a script calling `latchkey token`) loads commander, the flag
 * declarations and the one command it runs, nothing else.
 */
const COMMANDS = [
  status,
  doctor,
  events,
  token,
  login,
  logout,
  reset,
  storeCommand,
  demo,
  proxy,
  tools,
  call,
  reconnect,
  refresher,
  serve,
];

const EXAMPLES = `
Examples:
  latchkey demo                                   a one-minute tour, nothing to set up
  latchkey login https://mcp.example.com/mcp      log in once
  latchkey status                                 what is stored, and its state
  latchkey proxy https://mcp.example.com/mcp      in a host config, instead of mcp-remote
  latchkey logout https://mcp.example.com/mcp     revoke at the server, then forget

Exit codes: 0 ok, 1 error, 2 usage, 4 login required, 5 cancelled.
Store: --store or $LATCHKEY_STORE (a SQLite path or postgres://… URL; docs/stores.md), default
$LATCHKEY_HOME/latchkey.db (~/.config/latchkey). Every option: docs/configuration.md.`;

/**
 * Parse `argv` and run the command. Returns the exit code; never calls process.exit, so it
 * can be tested in-process.
 */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  let exitCode: number = ExitCode.OK;
  // The commands' io: the caller's, with `--store` folded into its environment as
  // LATCHKEY_STORE, so every command (and any process the proxy starts) opens the same store.
  const commandIO: CliIO = {
    out: (text) => io.out(text),
    err: (text) => io.err(text),
    env: io.env,
    ...(io.stdin === undefined ? {} : { stdin: io.stdin }),
  };
  Object.defineProperty(commandIO, 'isTTY', { get: () => io.isTTY, enumerable: true });
  const context: CliContext = { io: commandIO, setExitCode: (code) => (exitCode = code) };
  const program = new Command('latchkey')
    .description('OAuth credentials for remote MCP servers: log in once, stay logged in, log out for real.')
    .version(VERSION)
    .option('--store <url>', 'the store: a SQLite file path or a postgres://… URL (default: $LATCHKEY_STORE)')
    .addHelpText('after', EXAMPLES)
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .hook('preAction', () => {
      const store = program.opts<{ store?: string }>().store;
      if (store !== undefined) commandIO.env = { ...io.env, LATCHKEY_STORE: store };
    });
  for (const register of COMMANDS) register(program, context);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    exitCode = report(error, io);
  }
  return exitCode;
}

/** The one place a failure becomes an exit code (exit-codes.ts) and a line on stderr. */
function report(error: unknown, io: CliIO): number {
  if (error instanceof CommanderError) {
    // Commander already printed its message (help and version exit 0).
    return error.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
  }
  // A LatchkeyError's message is already safe; anything else may quote the network.
  io.err(`latchkey: ${cliMessage(error)}\n`);
  return exitCodeFor(error);
}
