// The SQLite store against the real OS keyring (on Linux: gnome-keyring's Secret Service on
// a D-Bus session bus; scripts/test.sh provides one). A machine without a keyring fails this
// file, because CI must exercise the keyring; LATCHKEY_TEST_NO_KEYRING=1 turns that into a skip
// for local runs.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { AsyncEntry } from '@napi-rs/keyring';
import Database from 'better-sqlite3';

import type { CredentialStore } from '../../src/store/contract.js';
import { keyFingerprint, parseDataKey } from '../../src/store/crypto.js';
import { KEY_FILE_NAME, keyringAccount } from '../../src/store/data-key.js';
import { KEYRING_SERVICE } from '../../src/store/keyring.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { credentialKey, credentialRecord, eventFor, latchkeyError, secret } from './contract.js';
import { startWorker } from '../support/worker.js';

const CHILD = fileURLToPath(new URL('../fixtures/store-child.ts', import.meta.url));
const PROBE_TIMEOUT_MS = 5000;

function entry(account: string, service = KEYRING_SERVICE): AsyncEntry {
  return new AsyncEntry(service, account, { linux: { store: 'secret-service' } });
}

/** Undefined when a Secret Service keyring answers set/get/delete; otherwise why not. */
async function probeKeyring(): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${PROBE_TIMEOUT_MS} ms`), PROBE_TIMEOUT_MS);
  });
  const attempt = (async (): Promise<string | undefined> => {
    const probe = entry(`probe-${process.pid}-${randomBytes(6).toString('hex')}`, 'latchkey-test-probe');
    const value = randomBytes(16).toString('hex');
    await probe.setPassword(value);
    const read = await probe.getPassword();
    await probe.deleteCredential();
    return read === value ? undefined : 'the keyring did not return what was stored';
  })().catch((error: unknown) => String((error as Error).message ?? error));
  try {
    return await Promise.race([attempt, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const unavailable = await probeKeyring();
const optedOut = process.env['LATCHKEY_TEST_NO_KEYRING'] === '1';

async function readEntry(account: string): Promise<string | undefined> {
  return (await entry(account).getPassword()) ?? undefined;
}

async function deleteEntry(account: string): Promise<void> {
  try {
    await entry(account).deleteCredential();
  } catch {
    // already absent
  }
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

describe('OS keyring', () => {
  it('a Secret Service keyring is reachable', (t) => {
    if (unavailable === undefined) return;
    if (optedOut) {
      t.skip(`no OS keyring (${unavailable}); skipped because LATCHKEY_TEST_NO_KEYRING=1`);
      return;
    }
    assert.fail(
      `no OS keyring is reachable: ${unavailable}. Run the tests through scripts/test.sh (D-Bus session + ` +
        'gnome-keyring), or set LATCHKEY_TEST_NO_KEYRING=1 to skip the keyring tests locally.',
    );
  });

  describe(
    'data key in the keyring',
    { skip: unavailable === undefined ? false : `no OS keyring: ${unavailable}` },
    () => {
      /** Homes made by the current test, with the keyring account each one uses. */
      let homes: { dir: string; account: string }[] = [];
      const stores: CredentialStore[] = [];

      async function freshHome(): Promise<{ home: string; account: string }> {
        const dir = await mkdtemp(join(tmpdir(), 'latchkey-keyring-'));
        // keyringAccount resolves the real path, so compute it once the directory exists.
        const account = keyringAccount(dir);
        homes.push({ dir, account });
        return { home: dir, account };
      }

      async function open(
        home: string,
        keyStorage: 'keyring' | 'auto' = 'keyring',
      ): Promise<CredentialStore> {
        const store = await openSqliteStore({ home, env: {}, keyStorage });
        stores.push(store);
        return store;
      }

      afterEach(async () => {
        for (const store of stores.splice(0)) await store.close();
        for (const { dir, account } of homes) {
          await deleteEntry(account);
          assert.equal(await readEntry(account), undefined, 'the test keyring entry was removed');
          await rm(dir, { recursive: true, force: true });
        }
        homes = [];
      });

      it("keyStorage 'keyring' keeps the data key in the keyring and nothing on disk", async () => {
        const { home, account } = await freshHome();
        assert.equal(await readEntry(account), undefined);
        const store = await open(home);
        assert.deepEqual(store.security, {
          keySource: 'keyring',
          insecure: false,
          location: join(home, 'latchkey.db'),
        });
        const text = await readEntry(account);
        assert.ok(text !== undefined, `service ${KEYRING_SERVICE}, account ${account} exists`);
        const key = parseDataKey(text);
        assert.ok(key !== undefined, 'the entry is a valid data key');
        assert.ok(!existsSync(join(home, KEY_FILE_NAME)), 'no data-key file');

        // The store records the keyring as its key source, with that key's fingerprint.
        const raw = new Database(join(home, 'latchkey.db'), { readonly: true });
        try {
          const meta = Object.fromEntries(
            (raw.prepare('SELECT name, value FROM meta').all() as { name: string; value: string }[]).map(
              (r) => [r.name, r.value],
            ),
          );
          assert.equal(meta['key_source'], 'keyring');
          assert.equal(meta['key_fingerprint'], keyFingerprint(key));
        } finally {
          raw.close();
        }
      });

      it('a reopen reads the same key from the keyring', async () => {
        const { home, account } = await freshHome();
        const first = await open(home);
        const record = credentialRecord(credentialKey(1));
        await first.writeCredential(record, { expectedGeneration: 0 }, eventFor(record.key));
        await first.close();
        const text = await readEntry(account);

        for (const keyStorage of ['keyring', 'auto'] as const) {
          const again = await open(home, keyStorage);
          assert.equal(again.security.keySource, 'keyring');
          assert.equal(again.security.insecure, false);
          assert.deepEqual((await again.getCredential(record.key))?.secrets, record.secrets);
          await again.close();
        }
        assert.equal(await readEntry(account), text, 'the entry is never replaced');
        assert.ok(!existsSync(join(home, KEY_FILE_NAME)));
      });

      it('each store directory has its own keyring entry and key', async () => {
        const a = await freshHome();
        const b = await freshHome();
        assert.notEqual(a.account, b.account);
        await open(a.home);
        await open(b.home);
        const keyA = await readEntry(a.account);
        const keyB = await readEntry(b.account);
        assert.ok(keyA !== undefined && keyB !== undefined);
        assert.notEqual(keyA, keyB);
      });

      it('a lost keyring entry is STORE_KEY_MISMATCH and the database is kept intact', async () => {
        const { home, account } = await freshHome();
        const first = await open(home);
        const record = credentialRecord(credentialKey(1));
        await first.writeCredential(record, { expectedGeneration: 0 }, eventFor(record.key));
        const clientSecret = secret('cs');
        await first.putRegistration({
          issuer: record.key.issuer,
          clientId: 'c',
          clientSecret,
          tokenEndpointAuthMethod: 'client_secret_basic',
          method: 'dynamic',
          registeredAt: 1,
        });
        await first.close();
        const dbPath = join(home, 'latchkey.db');
        const rows = (): unknown[] => {
          const raw = new Database(dbPath, { readonly: true });
          try {
            return [
              raw.prepare('SELECT * FROM credentials').all(),
              raw.prepare('SELECT * FROM registrations').all(),
              raw.prepare('SELECT * FROM meta ORDER BY name').all(),
            ];
          } finally {
            raw.close();
          }
        };
        const before = rows();

        const saved = await readEntry(account);
        assert.ok(saved !== undefined);
        await deleteEntry(account);
        for (const keyStorage of ['keyring', 'auto'] as const) {
          await assert.rejects(open(home, keyStorage), latchkeyError('STORE_KEY_MISMATCH'), keyStorage);
        }
        assert.equal(await readEntry(account), undefined, 'no new key was put in the keyring');
        assert.ok(!existsSync(join(home, KEY_FILE_NAME)), "'auto' did not fall back to a new key file");
        assert.deepEqual(rows(), before, 'credentials, registrations and key record are untouched');

        // Putting the key back makes everything readable again.
        await entry(account).setPassword(saved);
        const store = await open(home);
        assert.deepEqual((await store.getCredential(record.key))?.secrets, record.secrets);
        assert.equal((await store.getRegistration(record.key.issuer))?.clientSecret, clientSecret);
      });

      it("keyStorage 'auto' on a fresh home uses the keyring when one answers", async () => {
        const { home, account } = await freshHome();
        const store = await open(home, 'auto');
        assert.equal(store.security.keySource, 'keyring');
        assert.equal(store.security.insecure, false);
        assert.equal(store.security.warning, undefined);
        assert.ok(parseDataKey((await readEntry(account)) ?? '') !== undefined);
        assert.ok(!existsSync(join(home, KEY_FILE_NAME)));
      });
    },
  );

  describe('no reachable keyring', () => {
    // A child process whose D-Bus session address leads nowhere: the keyring cannot be reached.
    const NO_BUS = 'unix:path=/nonexistent/latchkey-test-bus';

    async function runChild(home: string, keyStorage: string) {
      const child = startWorker(CHILD, {
        LATCHKEY_HOME: home,
        LATCHKEY_KEY: '',
        LK_KEY_STORAGE: keyStorage,
        LK_KEYRING_TIMEOUT_MS: '2000',
        LK_SERVER: credentialKey('child').server,
        LK_ACCESS_TOKEN: secret('at'),
        DBUS_SESSION_BUS_ADDRESS: NO_BUS,
      });
      const report = await child.next<{
        type: string;
        security?: { keySource: string; insecure: boolean; warning?: string };
        error?: { code?: string; message?: string };
      }>((m) => m.type === 'written' || m.type === 'error', 20_000);
      return { report, exit: await child.exited };
    }

    it("keyStorage 'auto' falls back to a 0600 key file with a warning", async (t) => {
      const home = await mkdtemp(join(tmpdir(), 'latchkey-nokeyring-'));
      t.after(() => rm(home, { recursive: true, force: true }));
      const { report, exit } = await runChild(home, 'auto');
      assert.equal(report.type, 'written', JSON.stringify(report.error));
      assert.equal(exit.code, 0);
      assert.equal(report.security?.keySource, 'file');
      assert.equal(report.security?.insecure, true);
      assert.equal(typeof report.security?.warning, 'string');
      assert.ok((report.security?.warning ?? '').length > 20);
      const keyFile = join(home, KEY_FILE_NAME);
      assert.equal(mode(keyFile), 0o600);
      assert.ok(parseDataKey(readFileSync(keyFile, 'utf8')) !== undefined);

      // This process (keyring or not) reads the credential with the recorded file key.
      const store = await openSqliteStore({ home, env: {}, keyStorage: 'insecure-file' });
      t.after(() => store.close());
      assert.equal((await store.listCredentials()).length, 1);
      assert.equal(store.security.keySource, 'file');
    });

    it("keyStorage 'keyring' fails with KEYRING_UNAVAILABLE and writes no key file", async (t) => {
      const home = await mkdtemp(join(tmpdir(), 'latchkey-nokeyring-'));
      t.after(() => rm(home, { recursive: true, force: true }));
      const { report, exit } = await runChild(home, 'keyring');
      assert.equal(report.type, 'error');
      assert.equal(report.error?.code, 'KEYRING_UNAVAILABLE', report.error?.message);
      assert.equal(exit.code, 1);
      assert.ok(!existsSync(join(home, KEY_FILE_NAME)));
    });
  });
});
