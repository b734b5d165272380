import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';

import { keyFingerprint } from '../../src/store/crypto.js';
import { localKeyProvider, sealedBy } from '../../src/store/envelope.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { rekeyStore } from '../../src/store/rekey.js';
import { startWorker } from '../support/worker.js';
import { credentialKey, eventFor, latchkeyError, pendingRevocation, secret } from './contract.js';
import { assertReadable, envOf, inspect, newKey, openStore, tempDir, writeMany } from './envelope-support.js';

const CHILD = fileURLToPath(new URL('../fixtures/rekey-child.ts', import.meta.url));

describe('envelope encryption (sqlite store): sealing and rotation', () => {
  it('seals every secret under a wrapped data key, and no key is in the file in clear', async (t) => {
    const home = await tempDir();
    const kek = newKey();
    const store = await openStore(t, { home, env: envOf(kek) });
    const records = await writeMany(store, 3);
    const clientSecret = secret('cs');
    await store.putRegistration({
      issuer: 'https://as.example.com',
      clientId: 'c',
      clientSecret,
      tokenEndpointAuthMethod: 'client_secret_basic',
      method: 'dynamic',
      registeredAt: 1,
    });
    const queued = pendingRevocation(credentialKey(9));
    await store.addPendingRevocations([queued], eventFor(queued.key, 'revocation-pending'));

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

  it('rekey: a new data key seals everything, every value reads back, the old key is deleted', async (t) => {
    const home = await tempDir();
    const env = envOf(newKey());
    const store = await openStore(t, { home, env });
    const records = await writeMany(store, 25);
    const before = inspect(home);

    const result = await rekeyStore(store, { batchSize: 4, pauseMs: 0 });
    const afterRekey = inspect(home);
    assert.notEqual(result.dataKey, before.active);
    assert.equal(afterRekey.active, result.dataKey);
    assert.deepEqual([...afterRekey.sealedBy], [result.dataKey]);
    assert.deepEqual(
      afterRekey.keys.map((k) => k.id),
      [result.dataKey],
      'only the new data key is left',
    );
    assert.deepEqual(result.dropped, [before.active]);
    assert.equal(result.resealed, 25);
    await assertReadable(store, records);
    await assertReadable(await openStore(t, { home, env }), records);
  });

  it('during a rotation both data keys read, and new writes use the new one at once, in every process', async (t) => {
    const home = await tempDir();
    const env = envOf(newKey());
    const rotating = await openStore(t, { home, env });
    const other = await openStore(t, { home, env }); // opened before the rotation: holds only the old key
    const records = await writeMany(rotating, 20);
    const oldKey = inspect(home).active;

    const stop = new AbortController();
    await assert.rejects(
      rekeyStore(rotating, {
        batchSize: 3,
        pauseMs: 0,
        signal: stop.signal,
        onProgress: ({ resealed }) => resealed >= 6 && stop.abort(),
      }),
      { name: 'AbortError' },
    );
    const mid = inspect(home);
    assert.notEqual(mid.active, oldKey);
    assert.deepEqual(new Set(mid.sealedBy), new Set([oldKey, mid.active]), 'half re-sealed');
    assert.equal(new Set(mid.keys.map((k) => k.id)).size, 2);

    // The other connection writes first, before anything made it read the new key.
    const [written] = await writeMany(other, 1, 100);
    const sealedNow = new Database(join(home, 'latchkey.db'), { readonly: true });
    const blob = sealedNow
      .prepare('SELECT secrets FROM credentials WHERE server = ?')
      .pluck()
      .get(written!.key.server) as Buffer;
    sealedNow.close();
    assert.equal(sealedBy(blob), mid.active, 'the other process wrote with the new data key');
    await assertReadable(other, records); // old and new values
    await assertReadable(await openStore(t, { home, env }), [...records, written!]);

    const finished = await rekeyStore(other, { resume: true, pauseMs: 0 });
    assert.equal(finished.dataKey, mid.active, 'resume starts no new rotation');
    assert.deepEqual(finished.dropped, [oldKey]);
    assert.deepEqual([...inspect(home).sealedBy], [mid.active]);
    await assertReadable(rotating, [...records, written!]);
  });

  it('another process writing all through a rekey loses nothing', async (t) => {
    const home = await tempDir();
    const env = envOf(newKey());
    const store = await openStore(t, { home, env });
    const records = await writeMany(store, 30);
    const servers = [0, 1, 2, 3].map((n) => credentialKey(`w${n}`).server);
    const writer = startWorker(CHILD, {
      ...env,
      LATCHKEY_HOME: home,
      LK_MODE: 'write',
      LK_SERVERS: servers.join(','),
    } as Record<string, string>);
    t.after(() => writer.kill('SIGKILL'));
    await writer.next((m) => m['type'] === 'started');

    const result = await rekeyStore(store, { batchSize: 1, pauseMs: 5 });
    writer.send({ stop: true });
    const done = await writer.next<{ tokens: Record<string, string> }>((m) => m['type'] === 'done');
    assert.deepEqual(await writer.exited, { code: 0, signal: null }, writer.stderr());

    const file = inspect(home);
    assert.deepEqual(
      [...file.sealedBy],
      [result.dataKey],
      'the writer used the new key after the rotation began',
    );
    assert.deepEqual([...new Set(file.keys.map((k) => k.id))], [result.dataKey]);
    await assertReadable(store, records);
    const fresh = await openStore(t, { home, env });
    for (const server of servers) {
      const stored = await fresh.getCredential({
        server,
        issuer: 'https://as.example.com',
        subject: 'local',
      });
      assert.equal(stored?.secrets.accessToken, done.tokens[server], `${server}: the writer's last write`);
    }
  });

  it('a rekey killed with SIGKILL mid-way leaves every value readable, and --resume finishes it', async (t) => {
    const home = await tempDir();
    const env = envOf(newKey());
    const store = await openStore(t, { home, env });
    const records = await writeMany(store, 40);
    const oldKey = inspect(home).active;
    const child = startWorker(CHILD, {
      ...env,
      LATCHKEY_HOME: home,
      LK_MODE: 'rekey',
      LK_PAUSE_MS: '25',
    } as Record<string, string>);
    t.after(() => child.kill('SIGKILL'));
    await child.next((m) => m['type'] === 'progress' && Number(m['resealed']) >= 8);
    child.kill('SIGKILL');
    assert.equal((await child.exited).signal, 'SIGKILL');

    const mid = inspect(home);
    assert.deepEqual(new Set(mid.sealedBy), new Set([oldKey, mid.active]), 'killed half way');
    await assertReadable(store, records);
    await assertReadable(await openStore(t, { home, env }), records);

    const result = await rekeyStore(store, { resume: true, pauseMs: 0 });
    assert.equal(result.dataKey, mid.active);
    assert.deepEqual(result.dropped, [oldKey]);
    assert.deepEqual([...inspect(home).sealedBy], [mid.active]);
    await assertReadable(store, records);
  });

  it('a value that does not open stops the rekey with a typed error naming it; the old key stays', async (t) => {
    const home = await tempDir();
    const env = envOf(newKey());
    const store = await openStore(t, { home, env });
    const records = await writeMany(store, 4);
    const oldKey = inspect(home).active;
    const raw = new Database(join(home, 'latchkey.db'), { timeout: 5000 });
    t.after(() => void raw.close());
    const damaged = records[2]!.key.server;
    const blob = raw
      .prepare('SELECT secrets FROM credentials WHERE server = ?')
      .pluck()
      .get(damaged) as Buffer;
    const flipped = Buffer.from(blob);
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x01;
    raw.prepare('UPDATE credentials SET secrets = ? WHERE server = ?').run(flipped, damaged);

    await assert.rejects(
      rekeyStore(store, { pauseMs: 0 }),
      latchkeyError('STORE_KEY_MISMATCH', (e) => assert.ok(e.message.includes(damaged), e.message)),
    );
    assert.ok(new Set(inspect(home).keys.map((k) => k.id)).has(oldKey), 'the old data key is kept');
    await assertReadable(
      store,
      records.filter((r) => r.key.server !== damaged),
    );

    // Replacing the damaged credential (a new login) lets the rotation finish.
    const [replaced] = await writeMany(store, 1, 2);
    await rekeyStore(store, { resume: true, pauseMs: 0 });
    assert.equal(new Set(inspect(home).keys.map((k) => k.id)).size, 1);
    await assertReadable(store, [...records.filter((r) => r.key.server !== damaged), replaced!]);
  });

  it('a store without encryption at rest has no key to rotate: INVALID_INPUT', async () => {
    await assert.rejects(rekeyStore(createMemoryStore()), latchkeyError('INVALID_INPUT'));
  });
});
