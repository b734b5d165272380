import type { Command } from 'commander';

import type { CliContext } from '../context.js';
import { jsonOption, parseCount, parseLeaseSeconds, parseSeconds } from '../flags.js';

export interface RefresherFlags {
  json: boolean;
  batchSize?: number;
  concurrency?: number;
  issuerConcurrency?: number;
  issuerRate?: number;
  issuerBurst?: number;
  leaseTtl?: number;
}

export function register(program: Command, { io }: CliContext): void {
  program
    .command('refresher')
    .description(
      'keep every credential in the store fresh ahead of expiry, until interrupted; run it on any number of instances',
    )
    .addOption(jsonOption('one JSON event per line on stdout'))
    .option('--batch-size <n>', 'credentials claimed per store round trip (default 50)', parseCount)
    .option('--concurrency <n>', 'refreshes in flight in this instance (default 64)', parseCount)
    .option(
      '--issuer-concurrency <n>',
      'refreshes in flight per authorization server (default 8)',
      parseCount,
    )
    .option(
      '--issuer-rate <per-second>',
      'refresh requests per second per authorization server (default 20)',
      parseSeconds,
    )
    .option('--issuer-burst <n>', 'largest burst per authorization server (default: the rate)', parseCount)
    .option(
      '--lease-ttl <seconds>',
      "how soon a killed instance's claims are taken over (default 45)",
      parseLeaseSeconds,
    )
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey refresher\n  latchkey refresher --json --issuer-rate 5\n\nSee docs/refresher.md.',
    )
    .action(async (opts: RefresherFlags) => {
      const { runRefresher } = await import('./refresher.js');
      await runRefresher(io, opts);
    });
}
