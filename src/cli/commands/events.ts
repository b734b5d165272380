import { MESSAGE_MAX, networkText } from '../../network-text.js';
import type { CredentialStore, LifecycleEvent } from '../../store/contract.js';
import type { CliIO } from '../io.js';
import { withStore } from '../open-store.js';

export interface EventsOptions {
  server?: string;
  json: boolean;
  follow: boolean;
  limit: number;
  /** For --follow: resolves when the command should stop (Ctrl-C). */
  until?: Promise<void>;
}

/** `latchkey events`: --follow waits for events a login may write later, so it needs the real store. */
export async function runEvents(io: CliIO, options: EventsOptions): Promise<void> {
  await withStore(io, (store) => events(store, io, options), options.follow ? 'write' : 'read');
}

/**
 * The lifecycle event log: what happened to each credential and when, for "why did I get
 * logged out". Events never hold secrets, so printing them is safe.
 */
export async function events(store: CredentialStore, io: CliIO, options: EventsOptions): Promise<void> {
  const all = await store.readEvents(options.server === undefined ? {} : { server: options.server });
  const shown = all.slice(-options.limit);
  for (const event of shown) io.out(format(event, options.json));
  // Silence would read as "broken"; the note goes to stderr so `--json` stays pure.
  if (all.length === 0) {
    io.err(options.follow ? 'no events yet; waiting for new ones (Ctrl-C to stop)\n' : 'no events yet\n');
  }
  if (!options.follow) return;
  const stop = store.watch((batch) => {
    for (const event of batch) {
      if (options.server === undefined || event.server === options.server)
        io.out(format(event, options.json));
    }
  });
  try {
    await (options.until ?? new Promise<void>((resolve) => process.once('SIGINT', () => resolve())));
  } finally {
    stop();
  }
}

function format(event: LifecycleEvent, json: boolean): string {
  if (json) return JSON.stringify(event) + '\n';
  const detail = Object.entries(event.detail ?? {})
    // Details may quote a server (a refresh failure's reason), perhaps written by an older latchkey.
    .map(([k, v]) => `${k}=${networkText(String(v), { maxLength: MESSAGE_MAX })}`)
    .join(' ');
  const generation = event.generation === undefined ? '' : ` gen=${event.generation}`;
  return `${new Date(event.at).toISOString()}  ${event.type.padEnd(14)} ${event.server}  subject=${event.subject}${generation} pid=${event.pid}${detail === '' ? '' : `  ${detail}`}\n`;
}
