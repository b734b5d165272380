import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';

import Database from 'better-sqlite3';

import { keyFingerprint } from '../../src/store/crypto.js';
import { localKeyProvider } from '../../src/store/envelope.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { rekeyStore } from '../../src/store/rekey.js';
import { latchkeyError } from './contract.js';
import { type EnvelopeData, rekeyContract } from './envelope-contract.js';
import { envOf, inspect, newKey, openStore, tempDir, writeEveryKind } from './envelope-support.js';

/** A fresh SQLite home for the rekey contract; the file is read and damaged as another program would. */
async function sqliteData(t: TestContext): Promise<EnvelopeData> {
  const home = await tempDir();
  const env = envOf(newKey());
  const file = join(home, 'latchkey.db');
  const valueOf = (db: Database.Database, server: string): Buffer =>
    db.prepare('SELECT secrets FROM credentials WHERE server = ?').pluck().get(server) as Buffer;
  return {
    env,
    open: () => openStore(t, { home, env }),
    inspect: async () => inspect(home),
    async sealedValue(server) {
      const db = new Database(file, { readonly: true });
      try {
        return valueOf(db, server);
      } finally {
        db.close();
      }
    },
    async damage(server) {
      const db = new Database(file, { timeout: 5000 });
      try {
        const flipped = Buffer.from(valueOf(db, server));
        flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x01;
        db.prepare('UPDATE credentials SET secrets = ? WHERE server = ?').run(flipped, server);
      } finally {
        db.close();
      }
    },
    location: { LATCHKEY_HOME: home },
  };
}

rekeyContract('sqlite', sqliteData);

describe('envelope encryption (sqlite store): sealing', () => {
  it('seals every secret under a wrapped data key, and no key is in the file in clear', async (t) => {
    const home = await tempDir();
    const kek = newKey();
    const store = await openStore(t, { home, env: envOf(kek) });
    const { records, clientSecret, queued } = await writeEveryKind(store);

    const file = inspect(home);
    assert.equal(file.count, 5);
    assert.deepEqual([...file.sealedBy], [file.active], 'every value names the active data key');
    assert.equal(file.keys.length, 1);
    assert.equal(file.keys[0]?.kek_id, keyFingerprint(kek));
    const dek = await localKeyProvider(kek).unwrap(file.keys[0]!.wrapped);

    const forms = (b: Buffer): string[] => [b.toString('hex'), b.toString('base64'), b.toString('base64url')];
    const needles = [
      kek,
      dek,
      ...[...forms(kek), ...forms(dek)].map((s) => Buffer.from(s)),
      ...[
        clientSecret,
        queued.secrets.token,
        ...records.flatMap((r) => [r.secrets.accessToken, r.secrets.refreshToken ?? '']),
      ].map((s) => Buffer.from(s)),
    ];
    const search = (): void => {
      for (const name of ['latchkey.db', 'latchkey.db-wal']) {
        const path = join(home, name);
        if (!existsSync(path)) continue;
        const bytes = readFileSync(path);
        for (const needle of needles)
          assert.equal(bytes.indexOf(needle), -1, `key material or a secret in ${name}`);
      }
    };
    search();
    await store.close();
    search(); // after the checkpoint on close, everything is in latchkey.db
  });

  it('a store without encryption at rest has no key to rotate: INVALID_INPUT', async () => {
    await assert.rejects(rekeyStore(createMemoryStore()), latchkeyError('INVALID_INPUT'));
  });
});
