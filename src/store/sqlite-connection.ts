import type Database from 'better-sqlite3';

import type { CredentialKey } from '../credential/key.js';
import { ErrorCode, isLatchkeyError, LatchkeyError } from '../errors.js';
import type { SecretBox } from './crypto.js';
import { UnknownDataKeyError } from './envelope.js';
import { unknownDataKeyFailure } from './key-table.js';

/**
 * How the connection keeps up with other processes' key rotations: `checkActive` runs first
 * in every write transaction and throws UnknownDataKeyError when the database's active DEK
 * is one this process has not loaded; `reload` loads it. A read that meets such a DEK throws
 * the same error. Either way the operation runs once more after the reload.
 */
export interface KeyTracking {
  checkActive(): void;
  reload(): Promise<void>;
  /** Run `body` after a reload: unknown DEKs are then damage, not news. */
  settled<T>(body: () => T): T;
}

/**
 * The one SQLite connection every part of the store (credentials, registrations, leases,
 * events, pending revocations) runs on, with the rules they all share: nothing runs after
 * `close()`, every write is one IMMEDIATE transaction, and driver errors become
 * STORE_UNAVAILABLE.
 */
export class SqliteConnection {
  #closed = false;
  /** Poll nudges of this connection's watchers; see sqlite-events.ts. */
  readonly watchers = new Set<() => void>();
  keys: KeyTracking | undefined;

  constructor(
    readonly db: Database.Database,
    readonly box: SecretBox,
    /** The database file, for error messages. */
    readonly location: string,
  ) {
    reuseStatements(db);
  }

  get closed(): boolean {
    return this.#closed;
  }

  run<T>(body: () => T): Promise<T> {
    try {
      this.assertOpen();
      return Promise.resolve(body());
    } catch (error) {
      const keys = this.keys;
      if (error instanceof UnknownDataKeyError && keys !== undefined) {
        return keys.reload().then(
          () => this.#runOnce(body),
          (reloadError: unknown) => {
            throw this.#wrap(reloadError);
          },
        );
      }
      return Promise.reject(this.#wrap(error));
    }
  }

  /** Writes run in an IMMEDIATE transaction: the lock is taken before the first read. */
  write<T>(body: () => T): Promise<T> {
    return this.run(() =>
      this.db
        .transaction(() => {
          this.keys?.checkActive();
          return body();
        })
        .immediate(),
    );
  }

  #runOnce<T>(body: () => T): T {
    try {
      this.assertOpen();
      return this.keys === undefined ? body() : this.keys.settled(body);
    } catch (error) {
      throw this.#wrap(error);
    }
  }

  assertOpen(): void {
    if (this.#closed)
      throw new LatchkeyError(ErrorCode.STORE_UNAVAILABLE, 'the credential store is closed.', {
        retryable: false,
      });
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.watchers.clear();
      this.db.close();
    }
    return Promise.resolve();
  }

  #wrap(error: unknown): unknown {
    if (isLatchkeyError(error)) return error;
    if (error instanceof UnknownDataKeyError) return unknownDataKeyFailure(error);
    const busy = (error as { code?: string }).code?.startsWith('SQLITE_BUSY') === true;
    return new LatchkeyError(
      ErrorCode.STORE_UNAVAILABLE,
      busy ? 'the credential store stayed locked by another process.' : 'the credential store failed.',
      {
        retryable: busy,
        next: busy ? { kind: 'retry' } : { kind: 'configure', detail: `check ${this.location}` },
        cause: error,
      },
    );
  }
}

/**
 * Make `db.prepare` return one statement per SQL text instead of compiling a new one per
 * call. The store's modules call `conn.db.prepare(sql)` at each use; every fresh statement
 * holds native memory that only a V8 collection frees, and V8 does not see it, so a process
 * serving 100k credentials carried tens of MB of dead statements (issue 16). The SQL texts
 * are a fixed set (values are always bound parameters), so the map stays small. A statement
 * comes back in its default mode: `pluck()` set by a previous user is undone.
 */
function reuseStatements(db: Database.Database): void {
  const compile = db.prepare.bind(db);
  const statements = new Map<string, Database.Statement>();
  const prepare = (sql: string): Database.Statement => {
    let statement = statements.get(sql);
    if (statement === undefined) {
      statement = compile(sql);
      statements.set(sql, statement);
    } else if (statement.reader) statement.pluck(false);
    return statement;
  };
  db.prepare = prepare as Database.Database['prepare'];
}

export const KEY_WHERE = 'server = @server AND issuer = @issuer AND subject = @subject';

export type KeyParams = { server: string; issuer: string; subject: string };

/** Only the key's three columns, whatever else the object carries, as named SQL parameters. */
export function keyParams(key: CredentialKey): KeyParams {
  return { server: key.server, issuer: key.issuer, subject: key.subject };
}
