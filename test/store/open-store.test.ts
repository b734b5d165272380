// One store URL everywhere: openStore picks the store a URL names, and every CLI command opens
// the store of `--store` / LATCHKEY_STORE, on a real PostgreSQL server and real SQLite files.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';

import type { Finding } from '../../src/cli/commands/doctor.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { openStore, storeTarget } from '../../src/store/open.js';
import { redactStoreUrl } from '../../src/store/store-url.js';
import { startAuthorizationServer, startMcpServer } from '../harness/index.js';
import { captureIO } from '../support/cli-io.js';
import { freshDatabase } from '../support/postgres.js';
import { seedCredential } from '../support/seed-credential.js';

const scratch: string[] = [];
after(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

async function tempHome(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-open-store-'));
  scratch.push(dir);
  return dir;
}

const newKey = (): string => randomBytes(32).toString('base64');

/** A fresh Postgres database, dropped when the test ends. */
async function database(t: TestContext): Promise<string> {
  const db = await freshDatabase();
  t.after(() => db.drop());
  return db.url;
}

describe('store URLs', () => {
  it('name SQLite paths, sqlite: URLs and postgres URLs; LATCHKEY_STORE is the default', () => {
    const env = { LATCHKEY_HOME: '/tmp/lk-home' };
    assert.deepEqual(storeTarget(undefined, { env }), {
      kind: 'sqlite',
      path: '/tmp/lk-home/latchkey.db',
      home: '/tmp/lk-home',
      explicit: false,
    });
    assert.equal(storeTarget('/srv/a.db', { env }).kind, 'sqlite');
    assert.deepEqual(storeTarget('sqlite:///srv/b.db', { env }), {
      kind: 'sqlite',
      path: '/srv/b.db',
      home: '/tmp/lk-home',
      explicit: true,
    });
    assert.equal(
      (storeTarget('sqlite:rel.db', { env }) as { path: string }).path,
      join(process.cwd(), 'rel.db'),
    );
    for (const url of [
      'postgres://u@h/db',
      'postgresql://u:p@h:5433/db?sslmode=require',
      'POSTGRES://h/db',
    ]) {
      assert.deepEqual(storeTarget(url, { env }), { kind: 'postgres', url });
    }
    assert.deepEqual(storeTarget(undefined, { env: { ...env, LATCHKEY_STORE: 'postgres://h/x' } }), {
      kind: 'postgres',
      url: 'postgres://h/x',
    });
    assert.equal(
      storeTarget('/given.db', { env: { ...env, LATCHKEY_STORE: 'postgres://h/x' } }).kind,
      'sqlite',
    );
  });

  it('redact passwords, password parameters and unparseable text', () => {
    assert.equal(
      redactStoreUrl('postgres://me:s3cret@db.example:5432/lk'),
      'postgres://me:***@db.example:5432/lk',
    );
    assert.equal(
      redactStoreUrl('postgresql://me@db/lk?password=s3cret&sslmode=require'),
      'postgresql://me@db/lk?password=***&sslmode=require',
    );
    assert.doesNotMatch(redactStoreUrl('postgres://me:s3cret@[bad'), /s3cret/);
  });

  it('openStore opens the store its URL names', async (t) => {
    const url = await database(t);
    const home = await tempHome();
    const env = { LATCHKEY_HOME: home, LATCHKEY_KEY: newKey() };
    const pg = await openStore(url, { env, postgres: { poolMax: 2 } });
    t.after(() => pg.close());
    assert.equal(pg.kind, 'postgres');
    const file = join(home, 'elsewhere.db');
    const sqlite = await openStore(`sqlite:${file}`, { env });
    await sqlite.close();
    assert.equal(sqlite.kind, 'sqlite');
    assert.equal(sqlite.security.location, file);
    assert.ok(existsSync(file));
    assert.ok(!existsSync(join(home, 'latchkey.db')), 'the default file was not touched');
  });
});

describe('the CLI on a store URL', () => {
  const server = 'https://mcp.example.com/mcp';

  it('--store and LATCHKEY_STORE point every command at a Postgres store', async (t) => {
    const url = await database(t);
    const home = await tempHome();
    const key = newKey();
    const accessToken = randomBytes(24).toString('hex');
    await seedCredential(
      { LATCHKEY_HOME: home, LATCHKEY_KEY: key, LATCHKEY_STORE: url },
      server,
      accessToken,
    );
    assert.ok(!existsSync(join(home, 'latchkey.db')), 'nothing went to the SQLite default');

    const byFlag = captureIO({ LATCHKEY_HOME: home, LATCHKEY_KEY: key });
    assert.equal(await main(['--store', url, 'token', server], byFlag), ExitCode.OK, byFlag.stderr);
    assert.equal(byFlag.stdout, `${accessToken}\n`);

    const byEnv = captureIO({ LATCHKEY_HOME: home, LATCHKEY_KEY: key, LATCHKEY_STORE: url });
    assert.equal(await main(['status', '--json'], byEnv), ExitCode.OK, byEnv.stderr);
    assert.match(byEnv.stdout, /mcp\.example\.com/);

    // Without either, the (empty) SQLite default answers: nothing stored there.
    const neither = captureIO({ LATCHKEY_HOME: home, LATCHKEY_KEY: key });
    assert.equal(await main(['token', server], neither), ExitCode.LOGIN_REQUIRED);
  });

  it('the flag may follow the command, and a SQLite path works the same way', async () => {
    const home = await tempHome();
    const file = join(home, 'team.db');
    const key = newKey();
    const accessToken = randomBytes(24).toString('hex');
    await seedCredential(
      { LATCHKEY_HOME: home, LATCHKEY_KEY: key, LATCHKEY_STORE: file },
      server,
      accessToken,
    );
    const io = captureIO({ LATCHKEY_HOME: home, LATCHKEY_KEY: key });
    assert.equal(await main(['token', server, '--store', file], io), ExitCode.OK, io.stderr);
    assert.equal(io.stdout, `${accessToken}\n`);
  });

  it('doctor reports a Postgres store without its password; reset refuses it', async (t) => {
    const url = new URL(await database(t));
    url.password = 'pw-not-to-print';
    const home = await tempHome();
    const env = { LATCHKEY_HOME: home, LATCHKEY_KEY: newKey(), LATCHKEY_STORE: url.toString() };
    await (await openStore(undefined, { env })).close();
    const as = await startAuthorizationServer({});
    const mcp = await startMcpServer({ authorizationServer: as });
    const io = captureIO(env);
    try {
      await main(['doctor', mcp.url, '--json'], io);
    } finally {
      await mcp.close();
      await as.close();
    }
    const findings = (JSON.parse(io.stdout) as { findings: Finding[] }).findings;
    const store = findings.find((f) => f.check === 'store');
    assert.equal(store?.verdict, 'ok', JSON.stringify(store));
    assert.match(
      store?.detail ?? '',
      /^postgres:\/\/latchkey:\*\*\*@127\.0\.0\.1:\d+\/latchkey_test_\w+, key from env$/,
    );
    assert.doesNotMatch(io.stdout + io.stderr, /pw-not-to-print/);
    const reset = captureIO(env);
    assert.equal(await main(['reset', '--yes'], reset), ExitCode.USAGE);
    assert.match(reset.stderr, /LATCHKEY_STORE/);
  });
});
