import type { Command } from 'commander';

import type { CliContext } from '../context.js';

export function register(program: Command, { io }: CliContext): void {
  program
    .command('reset')
    .description('discard the store (credentials, its key file and keyring entry) without revoking anything')
    .option('--yes', 'really delete', false)
    .addHelpText(
      'after',
      '\nFor a store whose key is lost (STORE_KEY_MISMATCH). Prefer `latchkey logout --all`, which revokes.\n\nExample:\n  latchkey reset --yes',
    )
    .action(async (opts: { yes: boolean }) => {
      const { reset } = await import('./reset.js');
      await reset(io, opts);
    });
}
