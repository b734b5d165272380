import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { KEY_FILE_NAME } from '../../src/store/data-key.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { latchkey } from '../support/spawn-cli.js';

/** No keyring: the store keeps its key in the data-key file, as on a headless machine. */
const NO_KEYRING = { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/latchkey-test-bus', LATCHKEY_KEY: '' };

/** Issue 14, point 9, as the user meets it: `latchkey status` on a damaged store. */
describe('latchkey status on a corrupt store names the file and deletes nothing', () => {
  const homes: string[] = [];
  after(async () => {
    for (const home of homes) await rm(home, { recursive: true, force: true });
  });
  async function storeWithKeyFile(): Promise<string> {
    const home = await mkdtemp(join(tmpdir(), 'latchkey-corrupt-'));
    homes.push(home);
    const store = await openSqliteStore({ home, env: {}, keyStorage: 'insecure-file' });
    await store.close();
    return home;
  }

  it('a garbage data-key file', async () => {
    const home = await storeWithKeyFile();
    const keyFile = join(home, KEY_FILE_NAME);
    writeFileSync(keyFile, 'garbage\n');
    const run = await latchkey(['status'], { ...NO_KEYRING, LATCHKEY_HOME: home });
    assert.equal(run.code, ExitCode.ERROR, run.stderr);
    assert.ok(run.stderr.includes(keyFile), run.stderr);
    assert.match(run.stderr, /is corrupt/);
    assert.doesNotMatch(run.stderr, /missing/);
    // The store says what (repair it); the CLI says how, as commands.
    assert.ok(run.stderr.includes(`Next step: restore ${keyFile} from a backup`), run.stderr);
    assert.match(run.stderr, /latchkey reset --yes/);
    assert.equal(readFileSync(keyFile, 'utf8'), 'garbage\n');
  });

  it('a 0-byte latchkey.db next to the data-key file', async () => {
    const home = await storeWithKeyFile();
    const db = join(home, 'latchkey.db');
    for (const suffix of ['-wal', '-shm']) await rm(db + suffix, { force: true });
    writeFileSync(db, '');
    const run = await latchkey(['status', '--json'], { ...NO_KEYRING, LATCHKEY_HOME: home });
    assert.equal(run.code, ExitCode.ERROR, run.stderr);
    assert.ok((run.stdout + run.stderr).includes(db), run.stdout + run.stderr);
    assert.match(run.stdout + run.stderr, /STORE_CORRUPT|is corrupt/);
    assert.equal(statSync(db).size, 0, 'the database was not rewritten');
  });
});
