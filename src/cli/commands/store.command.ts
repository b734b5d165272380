import type { Command } from 'commander';

import type { CliContext } from '../context.js';
import { jsonOption, parseCount } from '../flags.js';

const REKEY_HELP = `
Rotates the data key that encrypts stored tokens while every other latchkey process keeps
running: new writes use the new key at once, older values are re-encrypted in small
batches, and the old data key is deleted when nothing uses it any more.

--new-key-from also replaces the key-encryption key (LATCHKEY_KEY, the OS keyring entry or
the key file: the key that wraps the data key):
  env:VAR   the new key is in environment variable VAR (64 hex characters or base64 of
            32 bytes); set LATCHKEY_KEY to it for every process of this store.
  keyring   a new random key, stored in this store's OS keyring entry.
The old key-encryption key keeps working until you run \`latchkey store rekey --resume\`
with the new one, once every process has restarted with it.

Safe to interrupt, even with kill -9: --resume finishes the rotation.

Examples:
  latchkey store rekey
  NEW_KEY=$(openssl rand -base64 32) latchkey store rekey --new-key-from env:NEW_KEY
  LATCHKEY_KEY=$NEW_KEY latchkey store rekey --resume`;

export function register(program: Command, { io }: CliContext): void {
  const store = program
    .command('store')
    .description('maintain the credential store')
    .addHelpText('after', '\nExample:\n  latchkey store rekey');
  store
    .command('rekey')
    .description('rotate the data key (and optionally the key-encryption key) without downtime')
    .option('--new-key-from <source>', 'also replace the key-encryption key: env:VAR or keyring')
    .option('--resume', 'only finish an interrupted rotation', false)
    .option('--batch-size <n>', 'values re-encrypted per transaction', parseCount, 100)
    .option(
      '--pause-ms <n>',
      'pause between batches, in ms, so other processes get the store',
      parseCount,
      10,
    )
    .addOption(jsonOption('print the result as one JSON object'))
    .addHelpText('after', REKEY_HELP)
    .action(
      async (opts: {
        newKeyFrom?: string;
        resume: boolean;
        batchSize: number;
        pauseMs: number;
        json: boolean;
      }) => {
        const { runRekey } = await import('./store.js');
        await runRekey(io, opts);
      },
    );
}
