import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { captureIO } from '../support/cli-io.js';

describe('latchkey reset', () => {
  let home: string;
  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'latchkey-reset-'));
  });
  after(() => rm(home, { recursive: true, force: true }));

  it('is the way out of a lost key: refuses without --yes, then discards the store', async () => {
    const first = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
    const store = await openSqliteStore({ home, env: first });
    await store.putRegistration({
      issuer: 'https://as.example',
      clientId: 'c',
      clientSecret: 'a secret that only the first key can read',
      tokenEndpointAuthMethod: 'client_secret_basic',
      method: 'dynamic',
      registeredAt: Date.now(),
    });
    await store.close();
    // Another key: the secrets can no longer be read.
    const lost = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
    const mismatch = captureIO(lost);
    assert.notEqual(await main(['status'], mismatch), ExitCode.OK);
    assert.match(mismatch.stderr, /latchkey reset/, 'the error points at reset');

    const refused = captureIO(lost);
    assert.equal(await main(['reset'], refused), ExitCode.USAGE);
    assert.match(refused.stderr, /latchkey logout --all/);
    assert.ok(existsSync(join(home, 'latchkey.db')), 'nothing is deleted without --yes');

    const done = captureIO(lost);
    assert.equal(await main(['reset', '--yes'], done), ExitCode.OK, done.stderr);
    assert.match(done.stderr, /Discarded the store/);
    assert.equal(existsSync(join(home, 'latchkey.db')), false);
    const fresh = captureIO(lost);
    assert.equal(await main(['status'], fresh), ExitCode.OK, fresh.stderr);
    assert.match(fresh.stdout, /no credentials yet/);
    assert.equal(existsSync(join(home, 'latchkey.db')), false, 'status after reset creates nothing');
  });
});
