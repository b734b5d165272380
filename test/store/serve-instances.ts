// The serve tables' suites run on both stores that have them, each test on two store objects
// over one fresh set of data, as two `latchkey serve` instances share it. This opens them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

import { openPostgresStore } from '../../src/store/postgres.js';
import { hasServeTables, type ServeStore } from '../../src/store/serve-contract.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { freshDatabase } from '../support/postgres.js';

export type ServeInstances = {
  store: ServeStore;
  /** A second store object on the same data (another instance). */
  other: ServeStore;
} & ({ kind: 'sqlite'; home: string } | { kind: 'postgres'; url: string });

/** Fresh data and two store objects on it, closed and removed when the test `t` ends. */
export type OpenInstances = (t: TestContext) => Promise<ServeInstances>;

function asServe(store: Awaited<ReturnType<typeof openSqliteStore>>): ServeStore {
  assert.ok(hasServeTables(store), `the ${store.kind} store has the serve tables`);
  return store;
}

const openSqlite: OpenInstances = async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'latchkey-serve-tables-'));
  const env = { LATCHKEY_KEY: randomBytes(32).toString('base64') };
  const store = asServe(await openSqliteStore({ home, env }));
  const other = asServe(await openSqliteStore({ home, env }));
  t.after(async () => {
    await store.close();
    await other.close();
    await rm(home, { recursive: true, force: true });
  });
  return { store, other, kind: 'sqlite', home };
};

const openPostgres: OpenInstances = async (t) => {
  const db = await freshDatabase();
  const env = { LATCHKEY_KEY: randomBytes(32).toString('base64') };
  const store = asServe(await openPostgresStore({ url: db.url, env }));
  const other = asServe(await openPostgresStore({ url: db.url, env }));
  t.after(async () => {
    await store.close();
    await other.close();
    await db.drop();
  });
  return { store, other, kind: 'postgres', url: db.url };
};

/** Each store with the serve tables, by name, for `describe` titles. */
export const SERVE_STORES: readonly { name: string; open: OpenInstances }[] = [
  { name: 'sqlite', open: openSqlite },
  { name: 'postgres', open: openPostgres },
];
