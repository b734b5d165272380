import { startRefresher } from '../../lifecycle/refresher/refresher.js';
import type { RefresherEvent } from '../../lifecycle/refresher/events.js';
import type { RefresherOptions } from '../../lifecycle/refresher/options.js';
import type { CliIO } from '../io.js';
import { withStore } from '../open-store.js';
import type { RefresherFlags } from './refresher.command.js';
import { signalled } from '../signals.js';

export interface RunRefresherOptions extends RefresherFlags {
  /** Resolves when the command should stop. Default: SIGINT or SIGTERM. */
  until?: Promise<void>;
}

/**
 * `latchkey refresher`: the fleet refresher in the foreground. Events go to stdout (one line
 * each, or JSON), so a supervisor's log shows who needs to log in again. On SIGINT/SIGTERM
 * it finishes the refreshes in flight and hands back its other claims before exiting.
 */
export async function runRefresher(io: CliIO, options: RunRefresherOptions): Promise<void> {
  await withStore(
    io,
    async (store) => {
      const refresher = startRefresher({ store, ...limits(options) });
      refresher.on('event', (event) => io.out(format(event, options.json)));
      io.err(`latchkey refresher: running as ${refresher.owner} (Ctrl-C to stop)\n`);
      try {
        await (options.until ?? signalled());
      } finally {
        await refresher.close();
      }
      const stats = refresher.stats();
      io.err(
        `latchkey refresher: stopped after ${stats.refreshed} refreshes (${stats.needsLogin} need a login)\n`,
      );
    },
    'write',
  );
}

function limits(flags: RefresherFlags): Omit<RefresherOptions, 'store'> {
  const seconds = (s: number | undefined): number | undefined => (s === undefined ? undefined : s * 1000);
  const picked: Record<string, number | undefined> = {
    batchSize: flags.batchSize,
    maxConcurrency: flags.concurrency,
    perIssuerConcurrency: flags.issuerConcurrency,
    perIssuerRatePerSecond: flags.issuerRate,
    perIssuerBurst: flags.issuerBurst,
    leaseTtlMs: seconds(flags.leaseTtl),
  };
  return Object.fromEntries(Object.entries(picked).filter(([, v]) => v !== undefined)) as Omit<
    RefresherOptions,
    'store'
  >;
}

function format(event: RefresherEvent, json: boolean): string {
  if (json) {
    if (event.type === 'error') return JSON.stringify({ type: 'error', error: event.error.toJSON() }) + '\n';
    return JSON.stringify(event) + '\n';
  }
  const at = new Date().toISOString();
  switch (event.type) {
    case 'refreshed':
    case 'adopted':
      return `${at}  ${event.type.padEnd(13)} ${event.server}  subject=${event.subject} gen=${event.generation}\n`;
    case 'retrying':
      return `${at}  retrying      ${event.server}  subject=${event.subject}  ${event.reason}\n`;
    case 'needs-login': {
      // A rejected grant's reason already starts with its OAuth error; do not say it twice.
      const why = event.reason.startsWith(event.error) ? event.reason : `${event.error}: ${event.reason}`;
      return `${at}  needs-login   ${event.server}  subject=${event.subject}  ${why}\n`;
    }
    case 'issuer-paused':
      return `${at}  issuer-paused ${event.issuer}  until=${new Date(event.until).toISOString()} (${event.reason})\n`;
    case 'error':
      return `${at}  error         ${event.error.message}\n`;
  }
}
