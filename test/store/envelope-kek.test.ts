import assert from 'node:assert/strict';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';

import { keyFingerprint } from '../../src/store/crypto.js';
import { localKeyProvider } from '../../src/store/envelope.js';
import { rekeyStore } from '../../src/store/rekey.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { latchkeyError } from './contract.js';
import {
  AesKeyWrapProvider,
  assertReadable,
  envOf,
  inspect,
  newKey,
  openStore,
  tempDir,
  writeMany,
} from './envelope-support.js';

const LEGACY_FIXTURE = fileURLToPath(new URL('../fixtures/legacy-v1-store.db', import.meta.url));

describe('envelope encryption (sqlite store): key-encryption keys', () => {
  it('opens a store written by latchkey before envelope encryption and migrates it', async (t) => {
    const home = await tempDir();
    const path = join(home, 'latchkey.db');
    copyFileSync(LEGACY_FIXTURE, path);
    const legacyKey = Buffer.alloc(32, 0x0f); // the LATCHKEY_KEY the fixture was written with
    const sealedValues = (): string[] => {
      const db = new Database(path, { readonly: true });
      try {
        return (
          db
            .prepare(
              `SELECT hex(secrets) FROM credentials UNION ALL SELECT hex(client_secret) FROM registrations
               UNION ALL SELECT hex(secrets) FROM pending_revocations`,
            )
            .pluck()
            .all() as string[]
        ).sort();
      } finally {
        db.close();
      }
    };
    const untouched = sealedValues();
    assert.equal(untouched.length, 3);
    assert.ok(
      untouched.every((v) => v.startsWith('01')),
      'the fixture holds version-1 values',
    );

    await assert.rejects(
      openSqliteStore({ home, env: envOf(newKey()) }),
      latchkeyError('STORE_KEY_MISMATCH'),
    );
    assert.deepEqual(sealedValues(), untouched, 'a wrong key re-seals and deletes nothing');

    const store = await openStore(t, { home, env: envOf(legacyKey) });
    const key = {
      server: 'https://legacy.example.com/mcp',
      issuer: 'https://as.example.com',
      subject: 'local',
    };
    assert.deepEqual((await store.getCredential(key))?.secrets, {
      accessToken: 'legacy-access-token-7f3a9c1e',
      refreshToken: 'legacy-refresh-token-52d8b0aa',
    });
    assert.equal((await store.getRegistration(key.issuer))?.clientSecret, 'legacy-client-secret-9e41');
    const [claimed] = await store.claimPendingRevocations({
      owner: 't',
      ttlMs: 1000,
      now: 1_800_000_000_000,
    });
    assert.equal(claimed?.secrets.token, 'legacy-revoked-token-c0ffee11');

    const file = inspect(home);
    assert.equal(file.count, 3);
    assert.deepEqual([...file.sealedBy], [file.active], 'no version-1 value is left');
    assert.equal(
      file.keys[0]?.kek_id,
      keyFingerprint(legacyKey),
      'the old key is now the key-encryption key',
    );
    assert.equal(store.security.keySource, 'env');
  });

  it('a wrong key-encryption key is STORE_KEY_MISMATCH and loses nothing, before and after a KEK change', async (t) => {
    const home = await tempDir();
    const first = newKey();
    const second = newKey();
    const store = await openSqliteStore({ home, env: envOf(first) });
    const records = await writeMany(store, 5);
    await store.close();

    await assert.rejects(openSqliteStore({ home, env: envOf(second) }), latchkeyError('STORE_KEY_MISMATCH'));
    const reopened = await openStore(t, { home, env: envOf(first) });
    await assertReadable(reopened, records);

    // Step 1: the new KEK is added; the old one keeps working for processes not restarted yet.
    const result = await rekeyStore(reopened, {
      newKek: { provider: localKeyProvider(second), source: 'env' },
      pauseMs: 0,
    });
    assert.equal(result.kek, keyFingerprint(second));
    const stillOld = await openStore(t, { home, env: envOf(first) });
    await assertReadable(stillOld, records);
    // Step 2, run with the new KEK once every process has it: the old KEK's copies go.
    const withSecond = await openStore(t, { home, env: envOf(second) });
    await rekeyStore(withSecond, { resume: true, pauseMs: 0 });
    assert.deepEqual(new Set(inspect(home).keys.map((k) => k.kek_id)), new Set([keyFingerprint(second)]));
    await assertReadable(reopened, records); // the processes already running go on
    await assertReadable(stillOld, records);
    await assert.rejects(openSqliteStore({ home, env: envOf(first) }), latchkeyError('STORE_KEY_MISMATCH'));
    await assertReadable(await openStore(t, { home, env: envOf(second) }), records);
  });

  it('takes a KeyProvider of the caller, calls it per data key (not per token), and rekeys to another', async (t) => {
    const home = await tempDir();
    const kms = new AesKeyWrapProvider('one');
    const store = await openStore(t, { home, env: {}, keyProvider: kms });
    assert.equal(store.security.keySource, 'provider');
    assert.equal(store.security.insecure, false);
    const records = await writeMany(store, 10);
    assert.equal(existsSync(join(home, 'data-key')), false, 'no key file');

    const again = new AesKeyWrapProvider('one-again');
    await assert.rejects(
      openSqliteStore({ home, env: {}, keyProvider: again }),
      latchkeyError('STORE_KEY_MISMATCH'),
    );
    await assert.rejects(
      openSqliteStore({ home, env: envOf(newKey()) }),
      latchkeyError('STORE_KEY_MISMATCH'),
    );

    const unwrapsBefore = kms.unwraps;
    const reader = await openStore(t, { home, env: {}, keyProvider: kms });
    await assertReadable(reader, records);
    await assertReadable(reader, records);
    assert.equal(kms.unwraps - unwrapsBefore, 1, 'one unwrap when the store opened, none per read');

    const next = new AesKeyWrapProvider('two');
    await rekeyStore(store, { newKek: { provider: next, source: 'provider' }, pauseMs: 0 });
    await assertReadable(reader, records); // opened under the old KEK, still reading the new data key
    const withNext = await openStore(t, { home, env: {}, keyProvider: next });
    await rekeyStore(withNext, { resume: true, pauseMs: 0 });
    assert.deepEqual(new Set(inspect(home).keys.map((k) => k.kek_id)), new Set([next.id]));
    await assertReadable(reader, records);
    await assert.rejects(
      openSqliteStore({ home, env: {}, keyProvider: kms }),
      latchkeyError('STORE_KEY_MISMATCH'),
    );
    await assertReadable(withNext, records);
  });
});
