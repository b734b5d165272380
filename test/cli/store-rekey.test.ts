import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { AsyncEntry } from '@napi-rs/keyring';
import Database from 'better-sqlite3';

import type { CredentialStore } from '../../src/store/contract.js';
import { keyFingerprint, parseDataKey } from '../../src/store/crypto.js';
import { keyringAccount } from '../../src/store/data-key.js';
import { KEYRING_SERVICE } from '../../src/store/keyring.js';
import type { Finding } from '../../src/cli/commands/doctor.js';
import { main } from '../../src/cli/main.js';
import { localKeyProvider } from '../../src/store/envelope.js';
import { rekeyStore } from '../../src/store/rekey.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { redactStoreUrl } from '../../src/store/store-url.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { startAuthorizationServer, startMcpServer } from '../harness/index.js';
import { captureIO } from '../support/cli-io.js';
import { adminQuery, freshDatabase } from '../support/postgres.js';
import { latchkey } from '../support/spawn-cli.js';
import { credentialKey, credentialRecord, eventFor, latchkeyError } from '../store/contract.js';

const scratch: string[] = [];
after(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

async function tempHome(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-rekey-cli-'));
  scratch.push(dir);
  return dir;
}

/** A store with `count` credentials; returns them after closing it. */
async function seed(home: string, env: NodeJS.ProcessEnv, count: number) {
  const store = await openSqliteStore({ home, env });
  const records = [];
  for (let n = 0; n < count; n++) {
    const record = credentialRecord(credentialKey(n));
    await store.writeCredential(record, { expectedGeneration: 'any' }, eventFor(record.key));
    records.push(record);
  }
  await store.close();
  return records;
}

async function assertReadable(store: CredentialStore, records: Awaited<ReturnType<typeof seed>>) {
  try {
    for (const r of records) assert.deepEqual((await store.getCredential(r.key))?.secrets, r.secrets);
  } finally {
    await store.close();
  }
}

function keks(home: string): Set<string> {
  const db = new Database(join(home, 'latchkey.db'), { readonly: true });
  try {
    return new Set(db.prepare('SELECT kek_id FROM data_keys').pluck().all() as string[]);
  } finally {
    db.close();
  }
}

describe('latchkey store rekey', () => {
  it('--help explains the rotation, the KEK sources and --resume', async () => {
    const run = await latchkey(['store', 'rekey', '--help'], {});
    assert.equal(run.code, 0);
    for (const text of ['--new-key-from', 'env:VAR', 'keyring', '--resume', '--batch-size', 'kill -9']) {
      assert.ok(run.stdout.includes(text), `help mentions ${text}:\n${run.stdout}`);
    }
  });

  it('rotates the data key, then moves to a new KEK from an env variable in two runs', async () => {
    const home = await tempHome();
    const oldKey = randomBytes(32).toString('base64');
    const newKey = randomBytes(32).toString('hex');
    const records = await seed(home, { LATCHKEY_KEY: oldKey }, 5);

    const plain = await latchkey(['store', 'rekey', '--json'], { LATCHKEY_HOME: home, LATCHKEY_KEY: oldKey });
    assert.equal(plain.code, 0, plain.stderr);
    const result = JSON.parse(plain.stdout) as { dataKey: string; resealed: number; dropped: string[] };
    assert.equal(result.resealed, 5);
    assert.equal(result.dropped.length, 1);

    const change = await latchkey(['store', 'rekey', '--new-key-from', 'env:NEW_KEY'], {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: oldKey,
      NEW_KEY: newKey,
    });
    assert.equal(change.code, 0, change.stderr);
    assert.match(change.stderr, /Set LATCHKEY_KEY to the value of NEW_KEY/);
    assert.ok(!change.stderr.includes(newKey) && !change.stdout.includes(newKey), 'the key is never printed');
    await assertReadable(await openSqliteStore({ home, env: { LATCHKEY_KEY: oldKey } }), records);

    const finish = await latchkey(['store', 'rekey', '--resume'], {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: newKey,
    });
    assert.equal(finish.code, 0, finish.stderr);
    assert.deepEqual(keks(home), new Set([keyFingerprint(parseDataKey(newKey)!)]));
    await assert.rejects(
      openSqliteStore({ home, env: { LATCHKEY_KEY: oldKey } }),
      latchkeyError('STORE_KEY_MISMATCH'),
    );
    await assertReadable(await openSqliteStore({ home, env: { LATCHKEY_KEY: newKey } }), records);
  });

  it('refuses a new KEK it cannot read (exit 2) and changes nothing', async () => {
    const home = await tempHome();
    const key = randomBytes(32).toString('base64');
    const records = await seed(home, { LATCHKEY_KEY: key }, 2);
    const before = keks(home);
    const run = await latchkey(['store', 'rekey', '--new-key-from', 'env:NOT_SET'], {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: key,
    });
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /NOT_SET/);
    assert.deepEqual(keks(home), before);
    await assertReadable(await openSqliteStore({ home, env: { LATCHKEY_KEY: key } }), records);
  });

  it('--new-key-from keyring puts a new KEK in the OS keyring entry, and the store opens with it', async (t) => {
    const home = await tempHome();
    const entry = new AsyncEntry(KEYRING_SERVICE, keyringAccount(home), {
      linux: { store: 'secret-service' },
    });
    t.after(async () => void (await entry.deleteCredential().catch(() => false)));
    const records = await seed(home, {}, 3);
    const first = await entry.getPassword();
    assert.ok(first, 'the store keeps its key in the keyring');

    const run = await latchkey(['store', 'rekey', '--new-key-from', 'keyring'], {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: '',
    });
    assert.equal(run.code, 0, run.stderr);
    const second = await entry.getPassword();
    assert.ok(second && second !== first, 'the keyring entry holds a new key');
    const resume = await latchkey(['store', 'rekey', '--resume'], { LATCHKEY_HOME: home, LATCHKEY_KEY: '' });
    assert.equal(resume.code, 0, resume.stderr);
    assert.deepEqual(keks(home), new Set([keyFingerprint(parseDataKey(second)!)]));
    await assertReadable(await openSqliteStore({ home, env: {} }), records);
  });

  it('doctor warns about a rotation left unfinished, with the command that finishes it', async (t) => {
    const home = await tempHome();
    const oldKey = randomBytes(32).toString('base64');
    const newKey = randomBytes(32).toString('base64');
    await seed(home, { LATCHKEY_KEY: oldKey }, 2);
    const as = await startAuthorizationServer({});
    const mcp = await startMcpServer({ authorizationServer: as });
    t.after(async () => {
      await mcp.close();
      await as.close();
    });
    const storeFinding = async (key: string): Promise<Finding | undefined> => {
      const io = captureIO({ LATCHKEY_HOME: home, LATCHKEY_KEY: key });
      await main(['doctor', mcp.url, '--json'], io);
      return (JSON.parse(io.stdout) as { findings: Finding[] }).findings.find((f) => f.check === 'store');
    };
    assert.equal((await storeFinding(oldKey))?.verdict, 'ok');

    const store = await openSqliteStore({ home, env: { LATCHKEY_KEY: oldKey } });
    await rekeyStore(store, { newKek: { provider: localKeyProvider(parseDataKey(newKey)!), source: 'env' } });
    await store.close();
    const unfinished = await storeFinding(newKey);
    assert.equal(unfinished?.verdict, 'warn');
    assert.match(unfinished?.detail ?? '', /2 key-encryption keys/);
    assert.match(unfinished?.fix ?? '', /latchkey store rekey --resume/);

    const finish = await latchkey(['store', 'rekey', '--resume'], {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: newKey,
    });
    assert.equal(finish.code, 0, finish.stderr);
    assert.equal((await storeFinding(newKey))?.verdict, 'ok');
  });
});

describe('latchkey store rekey --store postgres://…', () => {
  /** The data keys and the KEKs wrapping them, as the database has them. */
  async function keyRows(url: string): Promise<{ ids: Set<string>; keks: Set<string> }> {
    const { rows } = await adminQuery(url, 'SELECT id, kek_id FROM data_keys');
    const typed = rows as { id: string; kek_id: string }[];
    return { ids: new Set(typed.map((r) => r.id)), keks: new Set(typed.map((r) => r.kek_id)) };
  }

  it('rotates the data key, moves to a new KEK in two runs, and doctor reports the unfinished step', async (t) => {
    const db = await freshDatabase();
    const oldKey = randomBytes(32).toString('base64');
    const newKey = randomBytes(32).toString('hex');
    const as = await startAuthorizationServer({});
    const mcp = await startMcpServer({ authorizationServer: as });
    t.after(async () => {
      await mcp.close();
      await as.close();
      await db.drop();
    });
    const open = (key: string) => openPostgresStore({ url: db.url, env: { LATCHKEY_KEY: key } });
    const seeded = await open(oldKey);
    const records = [];
    for (let n = 0; n < 5; n++) {
      const record = credentialRecord(credentialKey(n));
      await seeded.writeCredential(record, { expectedGeneration: 'any' }, eventFor(record.key));
      records.push(record);
    }
    await seeded.close();
    const before = await keyRows(db.url);
    const home = await tempHome(); // for anything a command keeps beside the store (nothing, here)
    const cli = async (argv: string[], env: NodeJS.ProcessEnv) => {
      const io = captureIO({ LATCHKEY_HOME: home, ...env });
      const code = await main(argv, io);
      return { code, stdout: io.stdout, stderr: io.stderr };
    };
    // LATCHKEY_STORE points elsewhere: --store must win.
    const elsewhere = { LATCHKEY_STORE: '/nonexistent/latchkey.db' };
    const storeFinding = async (key: string): Promise<Finding | undefined> => {
      const run = await cli(['--store', db.url, 'doctor', mcp.url, '--json'], { LATCHKEY_KEY: key });
      return (JSON.parse(run.stdout) as { findings: Finding[] }).findings.find((f) => f.check === 'store');
    };
    assert.equal((await storeFinding(oldKey))?.verdict, 'ok');

    const plain = await cli(['--store', db.url, 'store', 'rekey', '--json'], {
      ...elsewhere,
      LATCHKEY_KEY: oldKey,
    });
    assert.equal(plain.code, 0, plain.stderr);
    const result = JSON.parse(plain.stdout) as { dataKey: string; resealed: number; dropped: string[] };
    assert.equal(result.resealed, 5);
    assert.deepEqual(result.dropped, [...before.ids]);
    assert.deepEqual((await keyRows(db.url)).ids, new Set([result.dataKey]));

    const change = await cli(['--store', db.url, 'store', 'rekey', '--new-key-from', 'env:NEW_KEY'], {
      LATCHKEY_KEY: oldKey,
      NEW_KEY: newKey,
    });
    assert.equal(change.code, 0, change.stderr);
    assert.ok(!change.stderr.includes(newKey) && !change.stdout.includes(newKey), 'the key is never printed');
    await assertReadable(await open(oldKey), records); // instances on the old KEK go on
    const unfinished = await storeFinding(newKey);
    assert.equal(unfinished?.verdict, 'warn');
    assert.match(unfinished?.detail ?? '', /2 key-encryption keys/);
    assert.match(unfinished?.fix ?? '', /latchkey store rekey --resume/);

    const finish = await cli(['--store', db.url, 'store', 'rekey', '--resume'], { LATCHKEY_KEY: newKey });
    assert.equal(finish.code, 0, finish.stderr);
    assert.deepEqual((await keyRows(db.url)).keks, new Set([keyFingerprint(parseDataKey(newKey)!)]));
    assert.equal((await storeFinding(newKey))?.verdict, 'ok');
    await assert.rejects(open(oldKey), latchkeyError('STORE_KEY_MISMATCH'));
    await assertReadable(await open(newKey), records);
  });

  it('--new-key-from keyring uses the database’s own keyring entry', async (t) => {
    const db = await freshDatabase();
    const entry = new AsyncEntry(KEYRING_SERVICE, keyringAccount(`postgres:${redactStoreUrl(db.url)}`), {
      linux: { store: 'secret-service' },
    });
    t.after(async () => {
      await entry.deleteCredential().catch(() => false);
      await db.drop();
    });
    const seeded = await openPostgresStore({ url: db.url, env: {} });
    assert.equal(seeded.security.keySource, 'keyring');
    const record = credentialRecord(credentialKey(1));
    await seeded.writeCredential(record, { expectedGeneration: 'any' }, eventFor(record.key));
    await seeded.close();
    const first = await entry.getPassword();
    assert.ok(first, 'the store keeps its key in that entry');

    const home = await tempHome();
    const run = async (argv: string[]) => {
      const io = captureIO({ LATCHKEY_HOME: home });
      const code = await main(['--store', db.url, 'store', 'rekey', ...argv], io);
      assert.equal(code, 0, io.stderr);
    };
    await run(['--new-key-from', 'keyring']);
    const second = await entry.getPassword();
    assert.ok(second && second !== first, 'the entry holds a new key');
    await run(['--resume']);
    assert.deepEqual((await keyRows(db.url)).keks, new Set([keyFingerprint(parseDataKey(second)!)]));
    await assertReadable(await openPostgresStore({ url: db.url, env: {} }), [record]);
  });
});
