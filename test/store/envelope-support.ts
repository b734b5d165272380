// Shared by the envelope-encryption tests: scratch directories, stores of N credentials,
// and a look at the database file as another program sees it.
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

import Database from 'better-sqlite3';

import type { CredentialStore } from '../../src/store/contract.js';
import { type KeyProvider, sealedBy } from '../../src/store/envelope.js';
import { openSqliteStore, type SqliteStoreOptions } from '../../src/store/sqlite.js';
import { credentialKey, credentialRecord, eventFor, pendingRevocation, secret } from './contract.js';

const scratch: string[] = [];
after(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-envelope-'));
  scratch.push(dir);
  return dir;
}

export const newKey = (): Buffer => randomBytes(32);
export const envOf = (key: Buffer): NodeJS.ProcessEnv => ({ LATCHKEY_KEY: key.toString('base64') });

export async function openStore(
  t: { after: (fn: () => Promise<void>) => void },
  options: SqliteStoreOptions,
): Promise<CredentialStore> {
  const store = await openSqliteStore(options);
  t.after(() => store.close());
  return store;
}

export async function writeMany(store: CredentialStore, count: number, from = 0) {
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

/**
 * A secret of every kind the store seals: three credentials, a registration's client secret
 * and a queued revocation's token (five sealed values).
 */
export async function writeEveryKind(store: CredentialStore) {
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
  return { records, clientSecret, queued };
}

export async function assertReadable(store: CredentialStore, records: Awaited<ReturnType<typeof writeMany>>) {
  for (const record of records) {
    assert.deepEqual((await store.getCredential(record.key))?.secrets, record.secrets, record.key.server);
  }
}

/** The file as another program sees it: which DEK sealed each value, and the key table. */
export function inspect(home: string) {
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
export class AesKeyWrapProvider implements KeyProvider {
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
