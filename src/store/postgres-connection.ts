import type pg from 'pg';

import type { CredentialKey } from '../credential/key.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import type { SecretBox } from './crypto.js';
import { UnknownDataKeyError } from './envelope.js';
import { unknownDataKeyFailure } from './key-table.js';
import { KEY_ROTATION_LOCK } from './postgres-schema.js';

/** Anything that runs a query: the pool, or one client inside a transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

/**
 * The database clock in epoch milliseconds. Leases and claims are timed by it and never by a
 * caller's clock, so instances whose clocks disagree still agree on who holds what.
 * `clock_timestamp()`, not `now()`: `now()` is frozen at the start of the transaction.
 */
export const DB_NOW_MS = `floor(extract(epoch from clock_timestamp()) * 1000)::bigint`;

export const KEY_WHERE = 'server = $1 AND issuer = $2 AND subject = $3';

/**
 * Text as Postgres stores it. A TEXT value cannot hold U+0000, and latchkey's internal keys
 * use it as a separator (a login lease's issuer is `\0login`), so NUL is written as `\0`
 * and a backslash as `\\`: injective, and text without either (every URL) is stored as is.
 */
export function pgText(text: string): string {
  if (!text.includes('\\') && !text.includes('\u0000')) return text;
  return text.replaceAll('\\', '\\\\').replaceAll('\u0000', '\\0');
}

export function fromPgText(text: string): string {
  return text.includes('\\')
    ? text.replace(/\\([\\0])/g, (_, c: string) => (c === '0' ? '\u0000' : '\\'))
    : text;
}

/** `pgText` for an optional filter value (null when absent). */
export function pgFilter(text: string | undefined): string | null {
  return text === undefined ? null : pgText(text);
}

/** The key's three columns as the first three parameters ($1..$3). */
export function keyValues(key: CredentialKey): [string, string, string] {
  return [pgText(key.server), pgText(key.issuer), pgText(key.subject)];
}

/** A row's key columns as they were written (see pgText). */
export function decodeKey<R extends { server: string; issuer: string; subject: string }>(row: R): R {
  return {
    ...row,
    server: fromPgText(row.server),
    issuer: fromPgText(row.issuer),
    subject: fromPgText(row.subject),
  };
}

/**
 * How the connection keeps up with other instances' key rotations (postgres-key-table.ts):
 * every write transaction begins by taking KEY_ROTATION_LOCK shared (held to its commit) and
 * then reading the active data key's id, which it hands to `observe`; that throws
 * UnknownDataKeyError when it is a key this instance has not loaded. Making a key active (and
 * deleting an old one) takes the lock exclusively, so it waits for every write in flight, and
 * every write after it reads the new id: no value sealed with an old key commits once a
 * rotation has begun, so the re-seal finds the old key's every value. (An advisory lock, not
 * a row lock on `meta`: a shared row lock held by many writers at once is a write to that row
 * each time.) A read that meets an unknown key throws the same error. Either way the
 * operation is rolled back, `reload` loads the new keys, and it runs once more.
 */
export interface PgKeyTracking {
  observe(activeId: string | undefined): void;
  reload(): Promise<void>;
}

/**
 * What a write transaction sends with BEGIN (see PgKeyTracking): two statements, so that the
 * read takes its snapshot after the lock is granted.
 */
const BEGIN_CHECKING_KEYS =
  `BEGIN; SELECT pg_advisory_xact_lock_shared(${KEY_ROTATION_LOCK}); ` +
  `SELECT value FROM meta WHERE name = 'active_data_key'`;

/**
 * The pool every part of the Postgres store runs on, with the rules they share: nothing runs
 * after `close()`, a write is one transaction (or one statement), and driver errors become
 * STORE_UNAVAILABLE, retryable when the failure is the kind that passes (a lost connection,
 * a timeout, a server restarting, a serialization failure).
 */
export class PgConnection {
  #closed = false;
  readonly #onClose: (() => Promise<void>)[] = [];
  /** Set once the keys are set up (postgres.ts); undefined only while the store opens. */
  keys: PgKeyTracking | undefined;

  constructor(
    readonly pool: pg.Pool,
    readonly box: SecretBox,
    /** The redacted URL, for error messages. */
    readonly location: string,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  /** One statement on any pooled connection. */
  async query<R extends pg.QueryResultRow>(sql: string, values: unknown[] = []): Promise<R[]> {
    return this.run(async () => (await this.pool.query<R>(sql, values)).rows);
  }

  /**
   * `body` inside BEGIN … COMMIT on one pooled connection; rolled back when it throws. The
   * active-key check is sent with BEGIN, in the same round trip. `checkKeys: false` is for
   * the key table's own transactions, which take the rotation lock themselves.
   */
  async tx<T>(body: (client: Queryable) => Promise<T>, options: { checkKeys?: boolean } = {}): Promise<T> {
    const keys = options.checkKeys === false ? undefined : this.keys;
    return this.run(async () => {
      const client = await this.pool.connect();
      // A checked-out client whose connection dies emits 'error' besides failing its query;
      // unheard, that event would crash the process. The failed query reports it instead.
      const heard = (): void => undefined;
      client.on('error', heard);
      let broken: Error | undefined;
      try {
        if (keys === undefined) await client.query('BEGIN');
        else keys.observe(activeKeyOf(await client.query(BEGIN_CHECKING_KEYS)));
        const result = await body(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch((lost: Error) => (broken = lost));
        throw error;
      } finally {
        client.removeListener('error', heard);
        // A client that could not even roll back is discarded, not pooled.
        client.release(broken);
      }
    });
  }

  /** `body`, run once more after a reload when it met a data key this instance had not loaded. */
  async run<T>(body: () => Promise<T>): Promise<T> {
    try {
      this.assertOpen();
      return await body();
    } catch (error) {
      const keys = this.keys;
      if (error instanceof UnknownDataKeyError && keys !== undefined) return this.#again(keys, body);
      throw storeFailure(error, this.location);
    }
  }

  async #again<T>(keys: PgKeyTracking, body: () => Promise<T>): Promise<T> {
    try {
      await keys.reload();
      this.assertOpen();
      // A key still unknown now is not a rotation in progress: storeFailure reports it.
      return await body();
    } catch (error) {
      throw storeFailure(error, this.location);
    }
  }

  assertOpen(): void {
    if (this.#closed)
      throw new LatchkeyError(ErrorCode.STORE_UNAVAILABLE, 'the credential store is closed.', {
        retryable: false,
      });
  }

  /** Run `stop` at close, before the pool ends (the watcher's LISTEN client, timers). */
  onClose(stop: () => Promise<void>): void {
    this.#onClose.push(stop);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const stop of this.#onClose.splice(0)) await stop().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
  }
}

/** SQLSTATE classes and codes that pass on their own: retry later. */
const TRANSIENT_SQLSTATE = /^(08|53|57P0[1-3]|40001|40P01|57014|55P03)/;
const TRANSIENT_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Whether a driver error is transient (connection, timeout, restart) rather than permanent. */
export function isTransientPgError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return TRANSIENT_SQLSTATE.test(code) || TRANSIENT_ERRNO.has(code);
  const message = error instanceof Error ? error.message : '';
  // pg's own connection-loss and pool-timeout errors carry no code.
  return /Connection terminated|timeout exceeded|Connection ended|connection timeout/i.test(message);
}

/** The active key's id from the results of BEGIN_CHECKING_KEYS. */
function activeKeyOf(results: pg.QueryResult | pg.QueryResult[]): string | undefined {
  const select = Array.isArray(results) ? results[2] : undefined;
  return (select?.rows[0] as { value?: string } | undefined)?.value;
}

/** A driver error as a LatchkeyError that never quotes the connection URL. */
export function storeFailure(error: unknown, location: string): unknown {
  if (isLatchkeyError(error)) return error;
  if (error instanceof UnknownDataKeyError) return unknownDataKeyFailure(error);
  const transient = isTransientPgError(error);
  return new LatchkeyError(
    ErrorCode.STORE_UNAVAILABLE,
    transient
      ? `the credential store ${location} is unreachable or busy.`
      : `the credential store ${location} failed.`,
    {
      retryable: transient,
      next: transient
        ? { kind: 'retry' }
        : { kind: 'configure', detail: `check the PostgreSQL server, database and role of ${location}` },
      cause: error,
    },
  );
}
