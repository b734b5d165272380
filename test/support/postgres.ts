// A fresh, empty PostgreSQL database per test, on a real server.
//
// When LATCHKEY_TEST_PG_URL is set (scripts/with-postgres.sh starts one cluster for a whole
// run), each database is created on that server. Otherwise this process starts a private
// cluster (initdb + pg_ctl on a free loopback port, trust auth) the first time it needs one
// and stops it when the process exits. Recipe: initdb refuses to run as root, so as root the
// cluster runs as the `postgres` user, in a 0755 scratch directory it can traverse.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import pg from 'pg';

export interface TestDatabase {
  /** postgres://… of the new, empty database. */
  url: string;
  /** The database's name. */
  name: string;
  /** Drop the database (its connections are terminated first). */
  drop: () => Promise<void>;
}

const PG_USER = 'latchkey';

/**
 * Which store the lifecycle and proxy environments use (test/support/lifecycle-env.ts,
 * proxy-env.ts): LATCHKEY_TEST_STORE=postgres gives each environment a fresh database, and
 * the processes it starts reach it through LATCHKEY_STORE; anything else means SQLite.
 */
export type TestStoreKind = 'sqlite' | 'postgres';

export function testStoreKind(): TestStoreKind {
  return process.env['LATCHKEY_TEST_STORE'] === 'postgres' ? 'postgres' : 'sqlite';
}

/** The directory holding initdb and pg_ctl: PATH first, then Debian's versioned folder. */
export function postgresBinDir(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v pg_ctl'], { encoding: 'utf8' }).stdout.trim();
  if (onPath !== '') return join(onPath, '..');
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const dir = join(root, version, 'bin');
    if (existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface Cluster {
  url: string;
  /** Stop the server and remove its files. */
  stop: () => void;
  /** An outage: the server goes down (`immediate`, like a crash), keeping its data. */
  down: () => void;
  /** The server comes back on the same port with the same data. */
  up: () => void;
}

/** Start a throwaway cluster; `stop()` is synchronous so it can run in an exit handler. */
export async function startCluster(): Promise<Cluster> {
  const bin = postgresBinDir();
  if (bin === undefined) throw new Error('PostgreSQL server binaries (initdb, pg_ctl) are not installed');
  const root = mkdtempSync(join(tmpdir(), 'latchkey-pg-'));
  chmodSync(root, 0o755);
  const data = join(root, 'data');
  mkdirSync(data, { mode: 0o700 });
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(root, uid, gid);
    chownSync(data, uid, gid);
  }
  const run = (tool: string, args: string[]): void => {
    const command = asRoot ? 'runuser' : join(bin, tool);
    const argv = asRoot ? ['-u', 'postgres', '--', join(bin, tool), ...args] : args;
    execFileSync(command, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  };
  run('initdb', ['-D', data, '-A', 'trust', '-U', PG_USER, '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  const options = `-c listen_addresses=127.0.0.1 -p ${port} -k ${root} -c fsync=off -c max_connections=200`;
  const up = (): void => run('pg_ctl', ['-D', data, '-l', join(root, 'log'), '-o', options, '-w', 'start']);
  up();
  let stopped = false;
  return {
    url: `postgres://${PG_USER}@127.0.0.1:${port}/postgres`,
    down: () => run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']),
    up,
    stop: () => {
      if (stopped) return;
      stopped = true;
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  };
}

let privateCluster: Promise<Cluster> | undefined;

/** The server's admin URL: the run's shared server, else this process's private cluster. */
async function serverUrl(): Promise<string> {
  const shared = process.env['LATCHKEY_TEST_PG_URL'];
  if (shared !== undefined && shared !== '') return shared;
  privateCluster ??= startCluster().then((cluster) => {
    process.once('exit', () => cluster.stop());
    return cluster;
  });
  return (await privateCluster).url;
}

/** Replace the database part of a connection URL. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** Create a new, empty database for one test. */
export async function freshDatabase(): Promise<TestDatabase> {
  const admin = await serverUrl();
  const name = `latchkey_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(admin, `CREATE DATABASE ${name}`);
  return {
    url: withDatabase(admin, name),
    name,
    drop: async () => {
      await adminQuery(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** Run one statement on `url` with a short-lived client. */
export async function adminQuery(url: string, sql: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql, values);
  } finally {
    await client.end();
  }
}
