import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { CredentialStore } from '../../src/store/contract.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { storeContract } from './contract.js';

storeContract('sqlite', async () => {
  const home = await mkdtemp(join(tmpdir(), 'latchkey-store-'));
  const env = { LATCHKEY_KEY: randomBytes(32).toString('base64') };
  const opened: CredentialStore[] = [await openSqliteStore({ home, env })];
  return {
    store: opened[0] as CredentialStore,
    async reopen() {
      for (const s of opened) await s.close();
      const again = await openSqliteStore({ home, env });
      opened.push(again);
      return again;
    },
    async cleanup() {
      for (const s of opened) await s.close();
      await rm(home, { recursive: true, force: true });
    },
  };
});
