import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { AsyncEntry } from '@napi-rs/keyring';

import { parseDataKey } from '../../src/store/crypto.js';
import { isLatchkeyError } from '../../src/errors.js';
import { keyringAccount } from '../../src/store/data-key.js';
import { KEYRING_SERVICE } from '../../src/store/keyring.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { KEY, record } from './contract.js';

const PROBE = fileURLToPath(new URL('../fixtures/store-security.ts', import.meta.url));
const pinned = { linux: { store: 'secret-service' as const } };

/**
 * Against the real OS keyring: gnome-keyring's Secret Service, which `npm test` starts in a
 * private D-Bus session. Without one this suite fails, unless LATCHKEY_TEST_NO_KEYRING=1
 * says the machine has none on purpose.
 */
describe('sqlite store: data key in the OS keyring', () => {
  let available = false;
  const homes: string[] = [];
  before(async () => {
    available = await keyringWorks();
    if (!available && process.env['LATCHKEY_TEST_NO_KEYRING'] !== '1') {
      throw new Error('no Secret Service reachable: run under `npm test` (dbus-run-session + gnome-keyring)');
    }
  });
  after(async () => {
    for (const home of homes) {
      await new AsyncEntry(KEYRING_SERVICE, keyringAccount(home), pinned)
        .deleteCredential()
        .catch(() => false);
      await rm(home, { recursive: true, force: true });
    }
  });
  const freshHome = async (): Promise<string> => {
    const home = await mkdtemp(join(tmpdir(), 'latchkey-keyring-'));
    homes.push(home);
    return home;
  };

  it('keeps the data key in the keyring, not on disk, and reads it back', async (t) => {
    if (!available) return t.skip('no keyring (LATCHKEY_TEST_NO_KEYRING=1)');
    const home = await freshHome();
    const store = await openSqliteStore({ home, env: {}, keyStorage: 'keyring' });
    assert.equal(store.security.keySource, 'keyring');
    assert.equal(store.security.insecure, false);
    const rec = record();
    await store.writeCredential(rec, { expectedGeneration: 0 }, { type: 'acquired', ...KEY });
    await store.close();
    assert.equal(existsSync(join(home, 'data-key')), false, 'no key file');
    const stored = await new AsyncEntry(KEYRING_SERVICE, keyringAccount(home), pinned).getPassword();
    assert.ok(
      stored !== null && stored !== undefined && parseDataKey(stored)?.length === 32,
      'a 32-byte key in the keyring',
    );

    const again = await openSqliteStore({ home, env: {} });
    assert.equal(again.security.keySource, 'keyring');
    assert.equal((await again.getCredential(KEY))?.secrets.accessToken, rec.secrets.accessToken);
    await again.close();
  });

  it('a keyring entry that vanished is a clear error and the store is kept', async (t) => {
    if (!available) return t.skip('no keyring (LATCHKEY_TEST_NO_KEYRING=1)');
    const home = await freshHome();
    const store = await openSqliteStore({ home, env: {}, keyStorage: 'keyring' });
    await store.writeCredential(record(), { expectedGeneration: 0 }, { type: 'acquired', ...KEY });
    await store.close();
    const entry = new AsyncEntry(KEYRING_SERVICE, keyringAccount(home), pinned);
    const saved = await entry.getPassword();
    await entry.deleteCredential();
    await assert.rejects(
      openSqliteStore({ home, env: {} }),
      (e: unknown) => isLatchkeyError(e) && e.code === 'STORE_KEY_MISMATCH' && /keyring/.test(e.message),
    );
    await entry.setPassword(saved ?? '');
    const restored = await openSqliteStore({ home, env: {} });
    assert.equal((await restored.listCredentials()).length, 1, 'restoring the key restores the credentials');
    await restored.close();
  });

  it("'auto' falls back to a 0600 key file with a warning when no keyring answers", async () => {
    const home = await freshHome();
    const report = await probe(home, { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/bus' });
    assert.equal(report.keySource, 'file');
    assert.equal(report.insecure, true);
    assert.match(String(report.warning), /keyring/);
    assert.equal(statSync(join(home, 'data-key')).mode & 0o777, 0o600);
  });
});

async function keyringWorks(): Promise<boolean> {
  try {
    const entry = new AsyncEntry('latchkey-test-probe', randomUUID(), pinned);
    await entry.setPassword('probe');
    const ok = (await entry.getPassword()) === 'probe';
    await entry.deleteCredential();
    return ok;
  } catch {
    return false;
  }
}

function probe(home: string, env: Record<string, string>): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, ['--import', 'tsx', PROBE], {
    env: { ...process.env, ...env, LATCHKEY_HOME: home, LATCHKEY_KEY: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as Record<string, unknown>)
        : reject(new Error(`probe exited ${code}`)),
    ),
  );
}
