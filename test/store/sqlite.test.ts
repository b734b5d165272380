import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';

import type { CredentialStore, LifecycleEvent, Registration } from '../../src/store/contract.js';
import { refreshPointAt } from '../../src/credential/due.js';
import { parseDataKey } from '../../src/store/crypto.js';
import { KEY_FILE_NAME } from '../../src/store/data-key.js';
import { openSqliteStore, type SqliteStoreOptions } from '../../src/store/sqlite.js';
import {
  credentialKey,
  credentialRecord,
  eventFor,
  eventually,
  latchkeyError,
  pendingRevocation,
  secret,
  storeContract,
} from './contract.js';
import { startWorker, type Worker } from '../support/worker.js';

const CHILD = fileURLToPath(new URL('../fixtures/store-child.ts', import.meta.url));

const scratch: string[] = [];
after(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

/** A fresh directory that is removed after the file's tests. */
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-sqlite-'));
  scratch.push(dir);
  return dir;
}

function newKey(): string {
  return randomBytes(32).toString('base64');
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

const octal = (m: number): string => `0${m.toString(8)}`;

storeContract('sqlite', async () => {
  const home = await mkdtemp(join(tmpdir(), 'latchkey-store-'));
  const env = { LATCHKEY_KEY: newKey() };
  const opened: CredentialStore[] = [];
  const open = async (): Promise<CredentialStore> => {
    const store = await openSqliteStore({ home, env });
    opened.push(store);
    return store;
  };
  return {
    store: await open(),
    reopen: open,
    cleanup: async () => {
      for (const store of opened) await store.close();
      await rm(home, { recursive: true, force: true });
    },
  };
});

describe('sqlite store', () => {
  /** Opens a store and registers it to be closed when the test ends. */
  async function openStore(
    t: { after: (fn: () => Promise<void>) => void },
    options: SqliteStoreOptions,
  ): Promise<CredentialStore> {
    const store = await openSqliteStore(options);
    t.after(() => store.close());
    return store;
  }

  async function writeOne(store: CredentialStore, n: number | string = 1) {
    const key = credentialKey(n);
    const record = credentialRecord(key);
    const result = await store.writeCredential(record, { expectedGeneration: 'any' }, eventFor(key));
    assert.equal(result.ok, true);
    return record;
  }

  describe('files and permissions', () => {
    it('creates the directory 0700 and latchkey.db, -wal and -shm 0600', async (t) => {
      const home = join(await tempDir(), 'nested', 'home');
      const env = { LATCHKEY_KEY: newKey() };
      const store = await openStore(t, { home, env });
      assert.equal(store.kind, 'sqlite');
      assert.deepEqual(store.security, {
        keySource: 'env',
        insecure: false,
        location: join(home, 'latchkey.db'),
      });
      await writeOne(store);
      await store.putRegistration({
        issuer: 'https://as.example.com',
        clientId: 'c',
        clientSecret: secret('cs'),
        tokenEndpointAuthMethod: 'client_secret_basic',
        method: 'dynamic',
        registeredAt: 1,
      });
      assert.equal(mode(home), 0o700, `directory is ${octal(mode(home))}`);
      for (const file of ['latchkey.db', 'latchkey.db-wal', 'latchkey.db-shm']) {
        const path = join(home, file);
        assert.ok(existsSync(path), `${file} exists while the store is open`);
        assert.equal(mode(path), 0o600, `${file} is ${octal(mode(path))}`);
      }
      assert.ok(!existsSync(join(home, KEY_FILE_NAME)), 'LATCHKEY_KEY means no key file');
    });

    for (const umask of [0o022, 0o000]) {
      it(`tightens a pre-existing 0755 directory and 0644 files under umask ${octal(umask)}`, async (t) => {
        const previous = process.umask(umask);
        t.after(() => void process.umask(previous));
        const home = join(await tempDir(), 'home');
        mkdirSync(home);
        chmodSync(home, 0o755);
        const env = { LATCHKEY_KEY: newKey() };

        let store = await openSqliteStore({ home, env });
        await writeOne(store, 1);
        assert.equal(mode(home), 0o700, `directory is ${octal(mode(home))}`);
        for (const file of ['latchkey.db', 'latchkey.db-wal', 'latchkey.db-shm'])
          assert.equal(mode(join(home, file)), 0o600, `${file} is ${octal(mode(join(home, file)))}`);
        await store.close();

        // Someone loosened everything while no latchkey process was running.
        chmodSync(home, 0o755);
        chmodSync(join(home, 'latchkey.db'), 0o644);
        store = await openStore(t, { home, env });
        await writeOne(store, 2);
        assert.equal(mode(home), 0o700);
        for (const file of ['latchkey.db', 'latchkey.db-wal', 'latchkey.db-shm'])
          assert.equal(mode(join(home, file)), 0o600, `${file} is ${octal(mode(join(home, file)))}`);
        assert.equal((await store.listCredentials()).length, 2);
      });
    }

    it('keeps tokens, client secrets and the DPoP key out of the raw bytes of the database and WAL', async (t) => {
      const home = await tempDir();
      const path = join(home, 'latchkey.db');
      const store = await openStore(t, { home, env: { LATCHKEY_KEY: newKey() } });
      // A non-secret marker proves that the byte search can find what is stored in clear.
      const marker = `client-${randomBytes(24).toString('hex')}`;
      const secrets: string[] = [];
      for (const n of [1, 2]) {
        const key = credentialKey(n);
        for (let generation = 0; generation < 3; generation++) {
          const record = credentialRecord(key, { clientId: marker });
          secrets.push(record.secrets.accessToken, record.secrets.refreshToken!, record.secrets.idToken!);
          const result = await store.writeCredential(
            record,
            { expectedGeneration: generation },
            eventFor(key, generation === 0 ? 'acquired' : 'refreshed'),
          );
          assert.equal(result.ok, true);
        }
      }
      for (const issuer of ['https://as1.example.com', 'https://as2.example.com']) {
        const registration: Registration = {
          issuer,
          clientId: marker,
          clientSecret: secret('cs'),
          tokenEndpointAuthMethod: 'client_secret_basic',
          method: 'dynamic',
          registeredAt: 1,
        };
        secrets.push(registration.clientSecret!);
        await store.putRegistration(registration);
      }
      await store.deleteCredential(
        credentialKey(2),
        { expectedGeneration: 'any' },
        eventFor(credentialKey(2), 'deleted'),
      );
      // Tokens queued for revocation (a logout while the AS was down) are sealed too.
      const queued = [
        pendingRevocation(credentialKey(2), { clientId: marker }),
        pendingRevocation(credentialKey(2), { clientId: marker, tokenType: 'access_token' }),
      ];
      for (const q of queued) secrets.push(q.secrets.token, q.secrets.clientSecret!);
      await store.addPendingRevocations(queued, eventFor(credentialKey(2), 'revocation-pending'));
      // The DPoP private key is sealed like a token.
      const dpopD = secret('dpop-d');
      secrets.push(dpopD);
      await store.dpopKey('ES256', () => ({
        alg: 'ES256',
        privateJwk: JSON.stringify({ d: dpopD }),
        createdAt: 1,
      }));

      const assertClean = (stage: string, mustHoldMarker: string[]): void => {
        for (const file of ['latchkey.db', 'latchkey.db-wal', 'latchkey.db-shm']) {
          const full = join(home, file);
          if (!existsSync(full)) continue;
          const bytes = readFileSync(full);
          for (const s of secrets) {
            assert.ok(!bytes.includes(Buffer.from(s, 'utf8')), `${stage}: a secret is readable in ${file}`);
            assert.ok(
              !bytes.includes(Buffer.from(s, 'utf16le')),
              `${stage}: a secret is readable in ${file}`,
            );
          }
          if (mustHoldMarker.includes(file))
            assert.ok(bytes.includes(Buffer.from(marker)), `${stage}: ${file} holds the clear-text marker`);
        }
      };

      assert.ok(statSync(`${path}-wal`).size > 0, 'writes went to the WAL');
      assertClean('before checkpoint', ['latchkey.db-wal']);

      const raw = new Database(path, { timeout: 5000 });
      try {
        raw.pragma('wal_checkpoint(TRUNCATE)');
      } finally {
        raw.close();
      }
      assertClean('after checkpoint', ['latchkey.db']);

      // More writes after the checkpoint land in the WAL again.
      const late = credentialRecord(credentialKey(3), { clientId: marker });
      secrets.push(late.secrets.accessToken, late.secrets.refreshToken!, late.secrets.idToken!);
      await store.writeCredential(late, { expectedGeneration: 0 }, eventFor(late.key));
      assertClean('after a later write', ['latchkey.db', 'latchkey.db-wal']);

      await store.close(); // the last connection checkpoints into the main file
      assertClean('after close', ['latchkey.db']);
    });

    it('prunes the event log to the newest keepEvents on open, ids keep increasing', async (t) => {
      const home = await tempDir();
      const env = { LATCHKEY_KEY: newKey() };
      const first = await openSqliteStore({ home, env });
      const all: LifecycleEvent[] = [];
      for (let i = 0; i < 20; i++) all.push(await first.appendEvent(eventFor(credentialKey(1), 'reconnect')));
      await first.close();
      const store = await openStore(t, { home, env, keepEvents: 5 });
      assert.deepEqual(await store.readEvents(), all.slice(-5));
      assert.equal(await store.lastEventId(), all.at(-1)!.id);
      const next = await store.appendEvent(eventFor(credentialKey(1), 'reconnect'));
      assert.ok(next.id > all.at(-1)!.id);
    });
  });

  describe('data key', () => {
    it('refuses a wrong LATCHKEY_KEY on a store with credentials and loses nothing', async (t) => {
      const home = await tempDir();
      const right = { LATCHKEY_KEY: newKey() };
      const first = await openSqliteStore({ home, env: right });
      const record = await writeOne(first);
      const registration: Registration = {
        issuer: 'https://as.example.com',
        clientId: 'c',
        clientSecret: secret('cs'),
        tokenEndpointAuthMethod: 'client_secret_basic',
        method: 'dynamic',
        registeredAt: 1,
      };
      await first.putRegistration(registration);
      await first.close();

      const wrongKey = randomBytes(32);
      for (const text of [wrongKey.toString('base64'), wrongKey.toString('hex')]) {
        await assert.rejects(
          openSqliteStore({ home, env: { LATCHKEY_KEY: text } }),
          latchkeyError('STORE_KEY_MISMATCH', (e) => {
            assert.equal(e.retryable, false);
            assert.equal(e.next?.kind, 'repair-store', 'restore the original key, or discard the store');
          }),
        );
      }
      // No key at all: the store recorded an env key, so setting it again is the fix.
      await assert.rejects(
        openSqliteStore({ home, env: {} }),
        latchkeyError('STORE_KEY_MISMATCH', (e) => {
          assert.equal(e.next?.kind, 'configure');
          assert.match(e.next.detail ?? '', /LATCHKEY_KEY/);
        }),
      );

      const store = await openStore(t, { home, env: right });
      const stored = await store.getCredential(record.key);
      assert.deepEqual(stored?.secrets, record.secrets);
      assert.equal(stored?.generation, 1);
      assert.deepEqual(await store.getRegistration(registration.issuer), registration);
    });

    it('binds each sealed revocation token to its row: swapped ciphertexts fail to open', async (t) => {
      const home = await tempDir();
      const env = { LATCHKEY_KEY: newKey() };
      const store = await openStore(t, { home, env });
      const [a, b] = await store.addPendingRevocations(
        [pendingRevocation(credentialKey(1)), pendingRevocation(credentialKey(2))],
        eventFor(credentialKey(1), 'revocation-pending'),
      );
      assert.ok(a && b);
      const raw = new Database(join(home, 'latchkey.db'), { timeout: 5000 });
      try {
        const blob = (id: string) =>
          raw.prepare('SELECT secrets FROM pending_revocations WHERE id = ?').pluck().get(id) as Buffer;
        const [blobA, blobB] = [blob(a.id), blob(b.id)];
        const put = raw.prepare('UPDATE pending_revocations SET secrets = ? WHERE id = ?');
        put.run(blobB, a.id);
        put.run(blobA, b.id);
      } finally {
        raw.close();
      }
      await assert.rejects(
        store.claimPendingRevocations({ owner: 'o', ttlMs: 60_000 }),
        latchkeyError('STORE_KEY_MISMATCH', (e) => assert.ok(!e.message.includes('rt-'))),
      );
      assert.equal((await store.listPendingRevocations()).length, 2, 'nothing lost, nothing claimed');
    });

    it('refuses a wrong key when the only secret is a token queued for revocation', async () => {
      const home = await tempDir();
      const first = await openSqliteStore({ home, env: { LATCHKEY_KEY: newKey() } });
      await first.addPendingRevocations(
        [
          pendingRevocation(credentialKey(1), {
            tokenEndpointAuthMethod: 'none',
            secrets: { token: secret('at') },
          }),
        ],
        eventFor(credentialKey(1), 'revocation-pending'),
      );
      await first.close();
      await assert.rejects(
        openSqliteStore({ home, env: { LATCHKEY_KEY: newKey() } }),
        latchkeyError('STORE_KEY_MISMATCH'),
      );
    });

    it('refuses a wrong key when the only secret is a client secret', async () => {
      const home = await tempDir();
      const first = await openSqliteStore({ home, env: { LATCHKEY_KEY: newKey() } });
      await first.putRegistration({
        issuer: 'https://as.example.com',
        clientId: 'c',
        clientSecret: secret('cs'),
        tokenEndpointAuthMethod: 'client_secret_post',
        method: 'dynamic',
        registeredAt: 1,
      });
      await first.close();
      await assert.rejects(
        openSqliteStore({ home, env: { LATCHKEY_KEY: newKey() } }),
        latchkeyError('STORE_KEY_MISMATCH'),
      );
    });

    it('accepts a different key on a store that holds no secrets, which then becomes its key', async (t) => {
      const home = await tempDir();
      const keyA = { LATCHKEY_KEY: newKey() };
      const keyB = { LATCHKEY_KEY: newKey() };
      const first = await openSqliteStore({ home, env: keyA });
      await first.putRegistration({
        issuer: 'https://as.example.com',
        clientId: 'public',
        tokenEndpointAuthMethod: 'none',
        method: 'dynamic',
        registeredAt: 1,
      });
      await first.putDiscovery({
        kind: 'authorization-server',
        id: 'https://as.example.com',
        document: { issuer: 'https://as.example.com' },
        sourceUrl: 'https://as.example.com/.well-known/oauth-authorization-server',
        fetchedAt: 1,
      });
      await first.appendEvent(eventFor(credentialKey(1), 'reconnect'));
      // A credential that was written and deleted leaves nothing to protect either.
      await writeOne(first, 9);
      await first.deleteCredential(
        credentialKey(9),
        { expectedGeneration: 'any' },
        eventFor(credentialKey(9), 'deleted'),
      );
      await first.close();

      const second = await openSqliteStore({ home, env: keyB });
      assert.equal(second.security.keySource, 'env');
      assert.equal((await second.getRegistration('https://as.example.com'))?.clientId, 'public');
      const record = await writeOne(second);
      await second.close();

      await assert.rejects(openSqliteStore({ home, env: keyA }), latchkeyError('STORE_KEY_MISMATCH'));
      const third = await openStore(t, { home, env: keyB });
      assert.deepEqual((await third.getCredential(record.key))?.secrets, record.secrets);
    });

    it('reads LATCHKEY_KEY as hex or base64 of the same 32 bytes', async (t) => {
      const home = await tempDir();
      const bytes = randomBytes(32);
      const first = await openSqliteStore({
        home,
        env: { LATCHKEY_KEY: bytes.toString('hex').toUpperCase() },
      });
      const record = await writeOne(first);
      await first.close();
      for (const text of [
        bytes.toString('base64'),
        bytes.toString('base64url'),
        ` ${bytes.toString('hex')}\n`,
      ]) {
        const store = await openStore(t, { home, env: { LATCHKEY_KEY: text } });
        assert.deepEqual((await store.getCredential(record.key))?.secrets, record.secrets);
        await store.close();
      }
    });

    it('rejects LATCHKEY_KEY text that is not a 32-byte key with INVALID_INPUT', async () => {
      const home = await tempDir();
      for (const text of [
        'not-a-key',
        'abc',
        '0'.repeat(63),
        '0'.repeat(65),
        'g'.repeat(64),
        randomBytes(16).toString('base64'),
        randomBytes(33).toString('base64'),
      ]) {
        await assert.rejects(
          openSqliteStore({ home, env: { LATCHKEY_KEY: text } }),
          latchkeyError('INVALID_INPUT', (e) => {
            assert.match(e.message, /LATCHKEY_KEY/);
            assert.ok(!e.message.includes(text), 'the bad key text is not echoed');
          }),
          JSON.stringify(text),
        );
      }
    });

    it("keyStorage 'insecure-file' keeps the key in a 0600 data-key file and says so", async (t) => {
      const home = join(await tempDir(), 'home');
      const store = await openSqliteStore({ home, env: {}, keyStorage: 'insecure-file' });
      const keyFile = join(home, KEY_FILE_NAME);
      assert.ok(existsSync(keyFile));
      assert.equal(mode(keyFile), 0o600, `data-key is ${octal(mode(keyFile))}`);
      assert.ok(parseDataKey(readFileSync(keyFile, 'utf8')) !== undefined, 'the file holds a valid key');
      assert.equal(store.security.keySource, 'file');
      assert.equal(store.security.insecure, true);
      assert.equal(typeof store.security.warning, 'string');
      assert.ok((store.security.warning ?? '').length > 20);
      const record = await writeOne(store);
      await store.close();
      const keyText = readFileSync(keyFile, 'utf8');

      for (const keyStorage of ['insecure-file', 'auto'] as const) {
        // 'auto' on a store whose key is recorded as the file uses the file, keyring or not.
        const again = await openStore(t, { home, env: {}, keyStorage });
        assert.equal(again.security.keySource, 'file');
        assert.equal(again.security.insecure, true);
        assert.deepEqual((await again.getCredential(record.key))?.secrets, record.secrets);
        await again.close();
      }
      assert.equal(readFileSync(keyFile, 'utf8'), keyText, 'the key file is never rewritten');
    });

    it('a missing data-key file on a store with credentials is STORE_KEY_MISMATCH, not a new key', async (t) => {
      const home = await tempDir();
      const first = await openSqliteStore({ home, env: {}, keyStorage: 'insecure-file' });
      const record = await writeOne(first);
      await first.close();
      const keyFile = join(home, KEY_FILE_NAME);
      const keyText = readFileSync(keyFile, 'utf8');
      await rm(keyFile);
      await assert.rejects(
        openSqliteStore({ home, env: {}, keyStorage: 'insecure-file' }),
        latchkeyError('STORE_KEY_MISMATCH', (e) =>
          assert.deepEqual(e.next, { kind: 'repair-store', path: keyFile }, 'restore the key file'),
        ),
      );
      assert.ok(!existsSync(keyFile), 'no replacement key was written over the lost one');
      writeFileSync(keyFile, keyText, { mode: 0o600 });
      const store = await openStore(t, { home, env: {}, keyStorage: 'insecure-file' });
      assert.deepEqual((await store.getCredential(record.key))?.secrets, record.secrets);
    });

    it('a garbage data-key file is STORE_CORRUPT naming the file, not "missing"; nothing is deleted', async (t) => {
      const home = await tempDir();
      const first = await openSqliteStore({ home, env: {}, keyStorage: 'insecure-file' });
      const record = await writeOne(first);
      await first.close();
      const keyFile = join(home, KEY_FILE_NAME);
      const db = join(home, 'latchkey.db');
      const keyText = readFileSync(keyFile, 'utf8');
      const dbBytes = readFileSync(db);
      const garbage = 'this is not a key \u0000\u00ff\n';
      writeFileSync(keyFile, garbage, { mode: 0o600 });
      for (const keyStorage of ['insecure-file', 'auto'] as const) {
        await assert.rejects(
          openSqliteStore({ home, env: {}, keyStorage }),
          latchkeyError('STORE_CORRUPT', (error) => {
            assert.ok(error.message.includes(keyFile), error.message);
            assert.match(error.message, /corrupt/);
            assert.doesNotMatch(error.message, /missing/);
            assert.equal(error.retryable, false);
            assert.deepEqual(error.next, { kind: 'repair-store', path: keyFile }, 'restore that file');
          }),
        );
      }
      assert.equal(readFileSync(keyFile, 'utf8'), garbage, 'the damaged key file is left as it was');
      assert.deepEqual(readFileSync(db), dbBytes, 'the database is untouched');
      writeFileSync(keyFile, keyText, { mode: 0o600 });
      const store = await openStore(t, { home, env: {}, keyStorage: 'insecure-file' });
      assert.deepEqual((await store.getCredential(record.key))?.secrets, record.secrets);
    });

    it('a 0-byte latchkey.db next to an existing data key is STORE_CORRUPT naming it, not an empty store', async () => {
      const home = await tempDir();
      const first = await openSqliteStore({ home, env: {}, keyStorage: 'insecure-file' });
      await writeOne(first);
      await first.close();
      const db = join(home, 'latchkey.db');
      const keyFile = join(home, KEY_FILE_NAME);
      const keyText = readFileSync(keyFile, 'utf8');
      for (const suffix of ['-wal', '-shm']) await rm(db + suffix, { force: true });
      writeFileSync(db, '');
      for (const keyStorage of ['insecure-file', 'auto'] as const) {
        await assert.rejects(
          openSqliteStore({ home, env: {}, keyStorage }),
          latchkeyError('STORE_CORRUPT', (error) => {
            assert.ok(error.message.includes(db), error.message);
            assert.match(error.message, /empty \(0 bytes\)/);
            assert.deepEqual(error.next, { kind: 'repair-store', path: db });
          }),
        );
      }
      assert.equal(statSync(db).size, 0, 'the database file is not rewritten');
      assert.equal(readFileSync(keyFile, 'utf8'), keyText, 'the key file is kept');
    });

    it('a database file SQLite cannot read is STORE_CORRUPT naming it; nothing is deleted', async () => {
      const home = await tempDir();
      const db = join(home, 'latchkey.db');
      const junk = randomBytes(8192);
      writeFileSync(db, junk, { mode: 0o600 });
      await assert.rejects(
        openSqliteStore({ home, env: { LATCHKEY_KEY: newKey() } }),
        latchkeyError('STORE_CORRUPT', (error) => assert.ok(error.message.includes(db), error.message)),
      );
      assert.deepEqual(readFileSync(db), junk);
    });

    it('detects tampered or transplanted secrets and names the server', async (t) => {
      const home = await tempDir();
      const store = await openStore(t, { home, env: { LATCHKEY_KEY: newKey() } });
      const one = await writeOne(store, 1);
      const two = await writeOne(store, 2);
      const issuer = 'https://as.example.com';
      await store.putRegistration({
        issuer,
        clientId: 'c',
        clientSecret: secret('cs'),
        tokenEndpointAuthMethod: 'client_secret_basic',
        method: 'dynamic',
        registeredAt: 1,
      });

      const raw = new Database(join(home, 'latchkey.db'), { timeout: 5000 });
      t.after(() => void raw.close());
      const blobOf = (server: string): Buffer =>
        raw.prepare('SELECT secrets FROM credentials WHERE server = ?').pluck().get(server) as Buffer;
      const setBlob = (server: string, blob: Buffer): void =>
        void raw.prepare('UPDATE credentials SET secrets = ? WHERE server = ?').run(blob, server);

      const original = blobOf(one.key.server);
      for (const index of [original.length - 1, 20, 1]) {
        const flipped = Buffer.from(original);
        flipped[index] = flipped[index]! ^ 0x01;
        setBlob(one.key.server, flipped);
        const mismatch = latchkeyError('STORE_KEY_MISMATCH', (e) => {
          assert.equal(e.server, one.key.server);
          assert.ok(e.message.includes(one.key.server), e.message);
          assert.equal(e.next?.kind, 'login', 'a new login replaces the unreadable credential');
          assert.equal(e.next.server, one.key.server);
        });
        await assert.rejects(store.getCredential(one.key), mismatch, `byte ${index}`);
        await assert.rejects(store.listCredentials(), mismatch);
      }
      // The other credential is unaffected.
      assert.deepEqual((await store.getCredential(two.key))?.secrets, two.secrets);

      // A valid sealed blob moved onto another credential's row does not open there.
      setBlob(one.key.server, blobOf(two.key.server));
      await assert.rejects(
        store.getCredential(one.key),
        latchkeyError('STORE_KEY_MISMATCH', (e) => assert.equal(e.server, one.key.server)),
      );
      setBlob(one.key.server, original);
      assert.deepEqual(
        (await store.getCredential(one.key))?.secrets,
        one.secrets,
        'restored bytes open again',
      );

      const sealed = raw
        .prepare('SELECT client_secret FROM registrations WHERE issuer = ?')
        .pluck()
        .get(issuer) as Buffer;
      const flipped = Buffer.from(sealed);
      flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x80;
      raw.prepare('UPDATE registrations SET client_secret = ? WHERE issuer = ?').run(flipped, issuer);
      await assert.rejects(
        store.getRegistration(issuer),
        latchkeyError('STORE_KEY_MISMATCH', (e) => {
          assert.ok(e.message.includes(issuer), e.message);
          assert.equal(e.next?.kind, 'repair-store');
        }),
      );
    });
  });

  describe('sharing between connections and processes', () => {
    it('two connections to one store: compare-and-set and watch work across them', async (t) => {
      const home = await tempDir();
      const env = { LATCHKEY_KEY: newKey() };
      const a = await openStore(t, { home, env });
      const b = await openStore(t, { home, env });
      const key = credentialKey(1);
      await writeOne(a, 1);
      const seen: LifecycleEvent[] = [];
      const unsubscribe = a.watch((events) => seen.push(...events), { pollMs: 50 });
      t.after(unsubscribe);

      const results = await Promise.all([
        a.writeCredential(credentialRecord(key), { expectedGeneration: 1 }, eventFor(key, 'refreshed')),
        b.writeCredential(credentialRecord(key), { expectedGeneration: 1 }, eventFor(key, 'refreshed')),
      ]);
      assert.deepEqual(
        results.map((r) => r.ok).sort(),
        [false, true],
        'exactly one of two racing writers wins',
      );
      assert.ok(
        results.some((r) => !r.ok && r.reason === 'generation-mismatch' && r.currentGeneration === 2),
      );

      assert.ok(await b.acquireLease(key, { owner: 'b', pid: 2, host: 'h' }, 60_000));
      assert.equal(await a.acquireLease(key, { owner: 'a', pid: 1, host: 'h' }, 60_000), undefined);
      assert.deepEqual(
        await a.writeCredential(
          credentialRecord(key),
          { expectedGeneration: 2, leaseOwner: 'a' },
          eventFor(key, 'refreshed'),
        ),
        { ok: false, reason: 'lease-lost', currentGeneration: 2 },
      );

      const fromB = await b.appendEvent(eventFor(key, 'reconnect'));
      assert.ok(
        await eventually(() => seen.some((e) => e.id === fromB.id), 1000),
        "b's event reaches a's watcher",
      );
      assert.deepEqual(
        seen.map((e) => e.type),
        ['refreshed', 'reconnect'],
      );
    });

    it("another process's write reaches watch() within 1 s", async (t) => {
      const home = await tempDir();
      const env = { LATCHKEY_KEY: newKey() };
      const store = await openStore(t, { home, env });
      const seen: { event: LifecycleEvent; at: number }[] = [];
      const unsubscribe = store.watch((events) => {
        const at = Date.now();
        for (const event of events) seen.push({ event, at });
      }); // the default poll interval
      t.after(unsubscribe);

      const server = credentialKey('child').server;
      const token = secret('at');
      const child = startWorker(CHILD, {
        LATCHKEY_HOME: home,
        LATCHKEY_KEY: env.LATCHKEY_KEY,
        LK_SERVER: server,
        LK_ACCESS_TOKEN: token,
      });
      const done = await child.next<{ type: string; at: number; error?: unknown }>(
        (m) => m.type === 'written' || m.type === 'error',
        20_000,
      );
      assert.equal(done.type, 'written', JSON.stringify(done.error));
      assert.ok(await eventually(() => seen.length > 0, 2000), 'the event arrived');
      const delay = seen[0]!.at - done.at;
      t.diagnostic(`cross-process delivery after ${delay} ms`);
      assert.ok(delay <= 1000, `seen ${delay} ms after the child's commit`);
      const event = seen[0]!.event;
      assert.equal(event.type, 'acquired');
      assert.equal(event.server, server);
      assert.equal(event.pid, child.pid);
      assert.equal(event.generation, 1);
      assert.equal((await store.getCredential(credentialKey('child')))?.secrets.accessToken, token);
      assert.equal((await child.exited).code, 0);
    });

    it('four processes racing to create a fresh store agree on one data key', async (t) => {
      const home = join(await tempDir(), 'fresh-home');
      const tokens = new Map<string, string>();
      const children: Worker[] = [];
      for (let i = 0; i < 4; i++) {
        const server = credentialKey(`race-${i}`).server;
        const token = secret('at');
        tokens.set(server, token);
        children.push(
          startWorker(CHILD, {
            LATCHKEY_HOME: home,
            LATCHKEY_KEY: '',
            LK_KEY_STORAGE: 'insecure-file',
            LK_SERVER: server,
            LK_ACCESS_TOKEN: token,
            LK_WAIT_FOR_GO: '1',
          }),
        );
      }
      t.after(() => {
        for (const child of children) child.kill('SIGKILL');
      });
      await Promise.all(children.map((c) => c.next((m) => m.type === 'ready', 60_000)));
      for (const child of children) child.send({ cmd: 'go' });
      const reports = await Promise.all(
        children.map((c) =>
          c.next<{ type: string; security?: { keySource: string }; error?: unknown }>(
            (m) => m.type === 'written' || m.type === 'error',
            60_000,
          ),
        ),
      );
      for (const report of reports) {
        assert.equal(report.type, 'written', JSON.stringify(report.error));
        assert.equal(report.security?.keySource, 'file');
      }
      for (const child of children) assert.equal((await child.exited).code, 0);

      const store = await openStore(t, { home, env: {}, keyStorage: 'insecure-file' });
      const listed = await store.listCredentials();
      assert.equal(listed.length, 4);
      for (const [server, token] of tokens) {
        const [credential] = await store.listCredentials({ server });
        assert.equal(credential?.secrets.accessToken, token, `${server} decrypts with the shared key`);
      }
      assert.equal(mode(join(home, KEY_FILE_NAME)), 0o600);
    });
  });
});

describe('sqlite due index migration', () => {
  it('fills in the due times of rows written before migration 3, once the key is at hand', async (t) => {
    const home = await tempDir();
    const env = { LATCHKEY_KEY: newKey() };
    const first = await openSqliteStore({ home, env });
    const withRt = credentialRecord(credentialKey('rt'));
    const withoutRt = credentialRecord(credentialKey('no-rt'), { secrets: { accessToken: secret('at') } });
    for (const record of [withRt, withoutRt]) {
      await first.writeCredential(record, { expectedGeneration: 0 }, eventFor(record.key));
    }
    await first.close();
    // Put the rows back the way migration 3 leaves a store that had credentials.
    const raw = new Database(join(home, 'latchkey.db'));
    raw.exec(`UPDATE credentials SET refresh_at = NULL, due_at = NULL;
      INSERT INTO meta (name, value) VALUES ('due_backfill', 'pending');`);
    raw.close();

    const store = await openSqliteStore({ home, env });
    t.after(() => store.close());
    assert.equal(await store.nextDueAt(), refreshPointAt(withRt));
    const claimed = await store.claimDueCredentials({
      holder: { owner: 'h:1:x', pid: 1, host: 'h' },
      ttlMs: 60_000,
      limit: 10,
      now: 4_000_000_000_000,
    });
    assert.deepEqual(
      claimed.map((c) => c.key.server),
      [withRt.key.server],
      'the row without a refresh token stays never-due',
    );
    const check = new Database(join(home, 'latchkey.db'), { readonly: true });
    t.after(() => check.close());
    assert.equal(check.prepare(`SELECT COUNT(*) FROM meta WHERE name = 'due_backfill'`).pluck().get(), 0);
  });
});

describe('sqlite due index and unreadable rows', () => {
  it('a row sealed under another key leaves the due index instead of failing every claim', async (t) => {
    const home = await tempDir();
    const env = { LATCHKEY_KEY: newKey() };
    const store = await openSqliteStore({ home, env });
    t.after(() => store.close());
    const good = credentialRecord(credentialKey('good'));
    const bad = credentialRecord(credentialKey('bad'), { obtainedAt: good.obtainedAt - 100_000 });
    for (const record of [good, bad]) {
      await store.writeCredential(record, { expectedGeneration: 0 }, eventFor(record.key));
    }
    const raw = new Database(join(home, 'latchkey.db'), { timeout: 5000 });
    t.after(() => void raw.close());
    raw
      .prepare('UPDATE credentials SET secrets = ? WHERE server = ?')
      .run(Buffer.alloc(64, 7), bad.key.server);
    const claim = {
      holder: { owner: 'h:1:x', pid: 1, host: 'h' },
      ttlMs: 60_000,
      limit: 1,
      now: 4_000_000_000_000,
    };
    // The bad row is due first; with a batch of one it would block the good one forever.
    const first = await store.claimDueCredentials(claim);
    const second = await store.claimDueCredentials(claim);
    assert.deepEqual(
      [...first, ...second].map((c) => c.key.server),
      [good.key.server],
    );
    assert.equal(await store.countDue(claim.now), 1);
    await assert.rejects(store.getCredential(bad.key), latchkeyError('STORE_KEY_MISMATCH'));
  });
});
