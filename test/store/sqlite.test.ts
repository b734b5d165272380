import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';

import { isLatchkeyError } from '../../src/errors.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { KEY, record } from './contract.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/store-writer.ts', import.meta.url));
const homes: string[] = [];
async function freshHome(): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'latchkey-sqlite-'));
  homes.push(home);
  return home;
}
const newKey = (): string => randomBytes(32).toString('base64');
const mode = (path: string): number => statSync(path).mode & 0o777;

describe('sqlite store: storage hygiene and keys', () => {
  after(async () => {
    for (const home of homes) await rm(home, { recursive: true, force: true });
  });

  it('directory 0700 and every file 0600, even from a loose existing directory', async () => {
    const parent = await freshHome();
    const home = join(parent, 'state');
    await mkdir(home, { mode: 0o755 });
    chmodSync(home, 0o755);
    const store = await openSqliteStore({ home, env: { LATCHKEY_KEY: newKey() } });
    await store.writeCredential(record(), { expectedGeneration: 0 }, { type: 'acquired', ...KEY });
    assert.equal(mode(home), 0o700);
    for (const file of ['latchkey.db', 'latchkey.db-wal', 'latchkey.db-shm']) {
      assert.ok(existsSync(join(home, file)), `${file} exists while open`);
      assert.equal(mode(join(home, file)), 0o600, file);
    }
    await store.close();
  });

  it('no token or client secret bytes in the database or WAL, before and after a checkpoint', async () => {
    const home = await freshHome();
    const store = await openSqliteStore({ home, env: { LATCHKEY_KEY: newKey() } });
    const rec = record(KEY, randomBytes(32).toString('hex'));
    const clientSecret = `cs-${randomBytes(24).toString('hex')}`;
    await store.writeCredential(rec, { expectedGeneration: 0 }, { type: 'acquired', ...KEY });
    await store.putRegistration({
      issuer: KEY.issuer,
      clientId: 'c',
      clientSecret,
      tokenEndpointAuthMethod: 'client_secret_basic',
      method: 'dynamic',
      registeredAt: 1,
    });
    const needles = [rec.secrets.accessToken, rec.secrets.refreshToken ?? '', clientSecret];
    const scan = (): void => {
      for (const file of ['latchkey.db', 'latchkey.db-wal']) {
        const path = join(home, file);
        if (!existsSync(path)) continue;
        const bytes = readFileSync(path);
        for (const needle of needles) {
          assert.equal(bytes.indexOf(needle), -1, `${file} holds a secret in clear`);
          assert.equal(bytes.indexOf(Buffer.from(needle, 'utf16le')), -1);
        }
      }
    };
    assert.ok(readFileSync(join(home, 'latchkey.db-wal')).length > 0, 'the WAL holds the writes');
    scan();
    const raw = new Database(join(home, 'latchkey.db'));
    raw.pragma('wal_checkpoint(TRUNCATE)');
    raw.close();
    scan();
    assert.equal((await store.getCredential(KEY))?.secrets.accessToken, rec.secrets.accessToken);
    await store.close();
  });

  it('a wrong key on a store with credentials is refused and nothing is deleted', async () => {
    const home = await freshHome();
    const key = newKey();
    const store = await openSqliteStore({ home, env: { LATCHKEY_KEY: key } });
    const rec = record();
    await store.writeCredential(rec, { expectedGeneration: 0 }, { type: 'acquired', ...KEY });
    await store.close();
    await assert.rejects(
      openSqliteStore({ home, env: { LATCHKEY_KEY: newKey() } }),
      (e: unknown) => isLatchkeyError(e) && e.code === 'STORE_KEY_MISMATCH' && e.nextStep !== undefined,
    );
    const again = await openSqliteStore({ home, env: { LATCHKEY_KEY: key } });
    assert.equal((await again.getCredential(KEY))?.secrets.accessToken, rec.secrets.accessToken);
    await again.close();
  });

  it('a new key on an empty store is accepted; a malformed LATCHKEY_KEY is INVALID_INPUT', async () => {
    const home = await freshHome();
    await (await openSqliteStore({ home, env: { LATCHKEY_KEY: newKey() } })).close();
    const other = await openSqliteStore({ home, env: { LATCHKEY_KEY: randomBytes(32).toString('hex') } });
    assert.equal(other.security.keySource, 'env');
    await other.close();
    await assert.rejects(
      openSqliteStore({ home, env: { LATCHKEY_KEY: 'too-short' } }),
      (e: unknown) => isLatchkeyError(e) && e.code === 'INVALID_INPUT' && /LATCHKEY_KEY/.test(e.message),
    );
  });

  it('insecure-file keeps the key in a 0600 file and says so', async () => {
    const home = await freshHome();
    const store = await openSqliteStore({ home, env: {}, keyStorage: 'insecure-file' });
    assert.equal(store.security.keySource, 'file');
    assert.equal(store.security.insecure, true);
    assert.match(store.security.warning ?? '', /keyring/);
    assert.equal(mode(join(home, 'data-key')), 0o600);
    await store.writeCredential(record(), { expectedGeneration: 0 }, { type: 'acquired', ...KEY });
    await store.close();
    const again = await openSqliteStore({ home, env: {}, keyStorage: 'insecure-file' });
    assert.ok(await again.getCredential(KEY));
    await again.close();
  });

  it('a tampered ciphertext is refused, naming the server', async () => {
    const home = await freshHome();
    const store = await openSqliteStore({ home, env: { LATCHKEY_KEY: newKey() } });
    await store.writeCredential(record(), { expectedGeneration: 0 }, { type: 'acquired', ...KEY });
    const raw = new Database(join(home, 'latchkey.db'));
    const blob = raw.prepare('SELECT secrets FROM credentials').pluck().get() as Buffer;
    blob[blob.length - 1] = (blob[blob.length - 1] ?? 0) ^ 0xff;
    raw.prepare('UPDATE credentials SET secrets = ?').run(blob);
    raw.close();
    await assert.rejects(
      store.getCredential(KEY),
      (e: unknown) => isLatchkeyError(e) && e.code === 'STORE_KEY_MISMATCH' && e.server === KEY.server,
    );
    await store.close();
  });

  it('processes opening a new store at once agree on one key', async () => {
    const home = await freshHome();
    const writers = Array.from({ length: 4 }, (_, i) => runWriter(home, `https://mcp${i}.example.com/mcp`));
    const codes = await Promise.all(writers);
    assert.deepEqual(codes, [0, 0, 0, 0]);
    const store: CredentialStore = await openSqliteStore({ home, env: {}, keyStorage: 'insecure-file' });
    assert.equal((await store.listCredentials()).length, 4, 'every writer used the same key');
    await store.close();
  });
});

function runWriter(home: string, server: string): Promise<number | null> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, server], {
    env: { ...process.env, LATCHKEY_HOME: home, LATCHKEY_KEY: '' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return new Promise((resolve) => child.on('exit', resolve));
}
