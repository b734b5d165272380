import { ErrorCode, LatchkeyError } from '../../errors.js';
import { newDataKey, parseDataKey } from '../../store/crypto.js';
import { keyringAccount } from '../../store/data-key.js';
import { localKeyProvider } from '../../store/envelope.js';
import { keyringSlot } from '../../store/keyring.js';
import { storeTarget } from '../../store/open.js';
import { defaultHome } from '../../store/paths.js';
import { rekeyStore, type RekeyOptions, type RekeyResult } from '../../store/rekey.js';
import { redactStoreUrl } from '../../store/store-url.js';
import type { CliIO } from '../io.js';
import { openCliStore } from '../open-store.js';

export interface RekeyCliOptions {
  /** `env:VAR` or `keyring`: also replace the key-encryption key. */
  newKeyFrom?: string;
  resume: boolean;
  batchSize: number;
  pauseMs: number;
  json: boolean;
}

/** `latchkey store rekey`: rekeyStore() on the user's store, with the new KEK taken from where the flag says. */
export async function runRekey(io: CliIO, options: RekeyCliOptions): Promise<void> {
  const target = storeTarget(undefined, { env: io.env });
  // The keyring entry a store's KEK lives in: per home for SQLite, per database for Postgres
  // (named as postgres-key.ts names it: the URL without its password).
  const keyringHome =
    target.kind === 'postgres' ? `postgres:${redactStoreUrl(target.url)}` : defaultHome(io.env);
  const newKek =
    options.newKeyFrom === undefined ? undefined : newKeyFrom(io, options.newKeyFrom, keyringHome);
  if (newKek !== undefined && options.resume) {
    throw usage(
      '--resume finishes a rotation with the key this process opens the store with; it takes no --new-key-from',
    );
  }
  const { store, missing } = await openCliStore(io, 'read');
  try {
    if (missing !== undefined) throw usage(`there is no store at ${missing} yet, so nothing to rekey`);
    const rekey: RekeyOptions = {
      resume: options.resume,
      batchSize: options.batchSize,
      pauseMs: options.pauseMs,
      ...(newKek === undefined ? {} : newKek),
    };
    const result = await rekeyStore(store, rekey);
    report(io, options, result, store.security.location);
  } finally {
    await store.close();
  }
}

function newKeyFrom(io: CliIO, from: string, home: string): Pick<RekeyOptions, 'newKek' | 'commitKek'> {
  if (from.startsWith('env:')) {
    const name = from.slice('env:'.length);
    const key = parseDataKey(io.env[name] ?? '');
    if (key === undefined) {
      throw usage(`environment variable ${name} does not hold a 32-byte key (64 hex characters or base64)`);
    }
    return { newKek: { provider: localKeyProvider(key), source: 'env' } };
  }
  if (from === 'keyring') {
    const key = newDataKey();
    return {
      newKek: { provider: localKeyProvider(key), source: 'keyring' },
      // Only after the store holds every data key wrapped by the new key: a crash before this
      // leaves the old key in the keyring and the store still readable with it.
      commitKek: async () => (await keyringSlot(keyringAccount(home))).set(key.toString('base64')),
    };
  }
  throw usage(`--new-key-from takes env:VAR or keyring, not ${JSON.stringify(from)}`);
}

function report(io: CliIO, options: RekeyCliOptions, result: RekeyResult, location: string): void {
  if (options.json) {
    io.out(`${JSON.stringify(result)}\n`);
    return;
  }
  const dropped =
    result.dropped.length === 0
      ? 'no old data key left to delete'
      : `deleted old data key ${result.dropped.join(', ')}`;
  io.err(
    `Rekeyed ${location}: data key ${result.dataKey} under key-encryption key ${result.kek}; ` +
      `re-encrypted ${result.resealed} value(s); ${dropped}.\n`,
  );
  if (options.newKeyFrom === undefined) return;
  const where =
    options.newKeyFrom === 'keyring'
      ? 'The new key-encryption key is in the OS keyring' +
        (io.env['LATCHKEY_KEY'] ? '; unset LATCHKEY_KEY, which would override it' : '')
      : `Set LATCHKEY_KEY to the value of ${options.newKeyFrom.slice('env:'.length)} for every process of this store`;
  io.err(
    `${where}. The old key-encryption key still works; once every process runs with the new one, ` +
      'finish with `latchkey store rekey --resume` under the new key.\n',
  );
}

function usage(message: string): LatchkeyError {
  return new LatchkeyError(ErrorCode.INVALID_INPUT, message, {
    retryable: false,
    next: { kind: 'configure', detail: 'see `latchkey store rekey --help`' },
  });
}
