import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';

import type { CredentialStore } from '../../src/store/contract.js';
import { keyFingerprint } from '../../src/store/crypto.js';
import { type KeyProvider, localKeyProvider, sealedBy } from '../../src/store/envelope.js';
import { rekeyStore } from '../../src/store/rekey.js';
import { openSqliteStore, type SqliteStoreOptions } from '../../src/store/sqlite.js';
import { startWorker } from '../support/worker.js';
import {
  credentialKey,
  credentialRecord,
  eventFor,
  latchkeyError,
  pendingRevocation,
  secret,
} from './contract.js';

const CHILD = fileURLToPath(new URL('../fixtures/rekey-child.ts', import.meta.url));
const LEGACY_FIXTURE = fileURLToPath(new URL('../fixtures/legacy-v1-store.db', import.meta.url));

const scratch: string[] = [];
after(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-envelope-'));
  scratch.push(dir);
  return dir;
}

const newKey = (): Buffer => randomBytes(32);
const envOf = (key: Buffer): NodeJS.ProcessEnv => ({ LATCHKEY_KEY: key.toString('base64') });

async function openStore(
  t: { after: (fn: () => Promise<void>) => void },
  options: SqliteStoreOptions,
): Promise<CredentialStore> {
  const store = await openSqliteStore(options);
  t.after(() => store.close());
  return store;
}

async function writeMany(store: CredentialStore, count: number, from = 0) {
  const records = [];
  for (let n = from; n < from + count; n++) {
    const record = credentialRecord(credentialKey(n));
    assert.equal(
      (await store.writeCredential(record, { expectedGeneration: 'any' }, eventFor(record.key))).ok,
      true,
    );
    records.push(record);
  }
  return records;
}

async function assertReadable(store: CredentialStore, records: Awaited<ReturnType<typeof writeMany>>) {
  for (const record of records) {
    assert.deepEqual((await store.getCredential(record.key))?.secrets, record.secrets, record.key.server);
  }
}

/** The file as another program sees it: which DEK sealed each value, and the key table. */
function inspect(home: string) {
  const db = new Database(join(home, 'latchkey.db'), { readonly: true, timeout: 5000 });
  try {
    const values = [
      ...(db.prepare('SELECT secrets FROM credentials').pluck().all() as Buffer[]),
      ...(db
        .prepare('SELECT client_secret FROM registrations WHERE client_secret IS NOT NULL')
        .pluck()
        .all() as Buffer[]),
      ...(db.prepare('SELECT secrets FROM pending_revocations').pluck().all() as Buffer[]),
    ];
    const keys = db.prepare('SELECT id, kek_id, wrapped FROM data_keys').all() as {
      id: string;
      kek_id: string;
      wrapped: Buffer;
    }[];
    const active = db
      .prepare(`SELECT value FROM meta WHERE name = 'active_data_key'`)
      .pluck()
      .get() as string;
    return { sealedBy: new Set(values.map((v) => sealedBy(v))), keys, active, count: values.length };
  } finally {
    db.close();
  }
}

/**
 * A KEK of the test's own, as a KMS would hold it: RFC 3394 AES key wrap (not latchkey's
 * AES-GCM wrapping), with the key kept inside this object. It counts its calls, so the test
 * can show latchkey does not call a (slow, metered) KMS per token.
 */
class AesKeyWrapProvider implements KeyProvider {
  readonly id: string;
  wraps = 0;
  unwraps = 0;
  readonly #kek = randomBytes(32);
  static readonly #IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

  constructor(label: string) {
    this.id = `test-kms:${label}`;
  }

  wrap(dataKey: Buffer): Promise<Buffer> {
    this.wraps += 1;
    const cipher = createCipheriv('id-aes256-wrap', this.#kek, AesKeyWrapProvider.#IV);
    return Promise.resolve(Buffer.concat([cipher.update(dataKey), cipher.final()]));
  }

  unwrap(wrapped: Buffer): Promise<Buffer> {
    this.unwraps += 1;
    const decipher = createDecipheriv('id-aes256-wrap', this.#kek, AesKeyWrapProvider.#IV);
    return Promise.resolve(Buffer.concat([decipher.update(wrapped), decipher.final()]));
  }
}

describe('envelope encryption (sqlite store)', () => {
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

    await assertReadable(other, records); // old and new values, from a process that never saw the new key
    const [written] = await writeMany(other, 1, 100);
    const sealedNow = new Database(join(home, 'latchkey.db'), { readonly: true });
    const blob = sealedNow
      .prepare('SELECT secrets FROM credentials WHERE server = ?')
      .pluck()
      .get(written!.key.server) as Buffer;
    sealedNow.close();
    assert.equal(sealedBy(blob), mid.active, 'the other process wrote with the new data key');
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
