// Online rekey as every store with envelope encryption must do it, as one reusable suite: each
// store's envelope test file calls `rekeyContract(name, open)`, and `open` gives fresh data with
// the few things only that store knows (how to open it again, how its tables look to another
// program, what a child process needs to reach it).
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

import type { CredentialStore } from '../../src/store/contract.js';
import { keyFingerprint } from '../../src/store/crypto.js';
import { sealedBy } from '../../src/store/envelope.js';
import { keyRotationStatus, rekeyStore } from '../../src/store/rekey.js';
import { startWorker } from '../support/worker.js';
import { credentialKey, latchkeyError } from './contract.js';
import { assertReadable, writeMany } from './envelope-support.js';

const CHILD = fileURLToPath(new URL('../fixtures/rekey-child.ts', import.meta.url));

/** The sealed values and the key table, as another program sees them. */
export interface Inspection {
  /** Which data key sealed each value. */
  sealedBy: Set<string | undefined>;
  keys: { id: string; kek_id: string; wrapped: Buffer }[];
  active: string;
  count: number;
}

/** Fresh data under a local KEK, and what only its store knows. */
export interface EnvelopeData {
  /** The environment that holds the KEK (LATCHKEY_KEY). */
  env: NodeJS.ProcessEnv;
  /** Another store object (another instance) on the data, closed when the test ends. */
  open(): Promise<CredentialStore>;
  inspect(): Promise<Inspection>;
  /** The sealed value of the credential for `server`, as stored. */
  sealedValue(server: string): Promise<Buffer>;
  /** Flip the last bit of that value, so that its GCM tag no longer matches. */
  damage(server: string): Promise<void>;
  /** What a child process needs, beyond `env`, to open the same data. */
  location: Record<string, string>;
}

export type OpenEnvelope = (t: TestContext) => Promise<EnvelopeData>;

/** A child process (test/fixtures/rekey-child.ts) on the data, killed when the test ends. */
function child(t: TestContext, data: EnvelopeData, more: Record<string, string>) {
  const worker = startWorker(CHILD, { ...data.env, ...data.location, ...more } as Record<string, string>);
  t.after(() => worker.kill('SIGKILL'));
  return worker;
}

export function rekeyContract(name: string, open: OpenEnvelope): void {
  describe(`envelope encryption (${name} store): online rekey`, () => {
    it('rekey: a new data key seals everything, every value reads back, the old key is deleted', async (t) => {
      const data = await open(t);
      const store = await data.open();
      const records = await writeMany(store, 25);
      const before = await data.inspect();
      assert.deepEqual((await keyRotationStatus(store)).dataKeys, [before.active]);

      const result = await rekeyStore(store, { batchSize: 4, pauseMs: 0 });
      const after = await data.inspect();
      assert.notEqual(result.dataKey, before.active);
      assert.equal(after.active, result.dataKey);
      assert.deepEqual([...after.sealedBy], [result.dataKey]);
      assert.deepEqual(
        after.keys.map((k) => k.id),
        [result.dataKey],
        'only the new data key is left',
      );
      assert.deepEqual(result.dropped, [before.active]);
      assert.equal(result.resealed, 25);
      assert.deepEqual(await keyRotationStatus(store), {
        activeDataKey: result.dataKey,
        dataKeys: [result.dataKey],
        keyEncryptionKeys: [keyFingerprint(Buffer.from(data.env['LATCHKEY_KEY']!, 'base64'))],
      });
      await assertReadable(store, records);
      await assertReadable(await data.open(), records);
    });

    it('during a rotation both data keys read, and another instance writes with the new one at once', async (t) => {
      const data = await open(t);
      const rotating = await data.open();
      const other = await data.open(); // opened before the rotation: holds only the old key
      const records = await writeMany(rotating, 20);
      const oldKey = (await data.inspect()).active;

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
      const mid = await data.inspect();
      assert.notEqual(mid.active, oldKey);
      assert.deepEqual(new Set(mid.sealedBy), new Set([oldKey, mid.active]), 'half re-sealed');
      assert.equal(new Set(mid.keys.map((k) => k.id)).size, 2);
      const status = await keyRotationStatus(other);
      assert.equal(status.dataKeys.length, 2, 'the status shows the unfinished rotation');

      // The other instance writes first, before anything made it read the new key.
      const [written] = await writeMany(other, 1, 100);
      const sealed = await data.sealedValue(written!.key.server);
      assert.equal(sealedBy(sealed), mid.active, 'the other instance wrote with the new data key');
      await assertReadable(other, records); // old and new values
      await assertReadable(await data.open(), [...records, written!]);

      const finished = await rekeyStore(other, { resume: true, pauseMs: 0 });
      assert.equal(finished.dataKey, mid.active, 'resume starts no new rotation');
      assert.deepEqual(finished.dropped, [oldKey]);
      assert.deepEqual([...(await data.inspect()).sealedBy], [mid.active]);
      await assertReadable(rotating, [...records, written!]);
    });

    it('another process writing all through a rekey loses nothing', async (t) => {
      const data = await open(t);
      const store = await data.open();
      const records = await writeMany(store, 30);
      const servers = [0, 1, 2, 3].map((n) => credentialKey(`w${n}`).server);
      const writer = child(t, data, { LK_MODE: 'write', LK_SERVERS: servers.join(',') });
      await writer.next((m) => m['type'] === 'started');

      const result = await rekeyStore(store, { batchSize: 1, pauseMs: 5 });
      writer.send({ stop: true });
      const done = await writer.next<{ tokens: Record<string, string> }>((m) => m['type'] === 'done');
      assert.deepEqual(await writer.exited, { code: 0, signal: null }, writer.stderr());

      // Only what existed when the rotation began needed re-sealing: from then on the writer's
      // every write used the new key (without the active-key check it would re-seal forever).
      assert.ok(result.resealed <= records.length + servers.length, `re-sealed ${result.resealed}`);
      const tables = await data.inspect();
      assert.deepEqual(
        [...tables.sealedBy],
        [result.dataKey],
        'the writer used the new key once the rotation began',
      );
      assert.deepEqual([...new Set(tables.keys.map((k) => k.id))], [result.dataKey]);
      await assertReadable(store, records);
      const fresh = await data.open();
      for (const server of servers) {
        const stored = await fresh.getCredential({
          server,
          issuer: 'https://as.example.com',
          subject: 'local',
        });
        assert.equal(stored?.secrets.accessToken, done.tokens[server], `${server}: the writer's last write`);
      }
    });

    it('a rekey process killed with SIGKILL mid-way leaves every value readable, and --resume finishes it', async (t) => {
      const data = await open(t);
      const store = await data.open();
      const records = await writeMany(store, 40);
      const oldKey = (await data.inspect()).active;
      const rekeying = child(t, data, { LK_MODE: 'rekey', LK_PAUSE_MS: '25' });
      await rekeying.next((m) => m['type'] === 'progress' && Number(m['resealed']) >= 8);
      rekeying.kill('SIGKILL');
      assert.equal((await rekeying.exited).signal, 'SIGKILL');

      const mid = await data.inspect();
      assert.deepEqual(new Set(mid.sealedBy), new Set([oldKey, mid.active]), 'killed half way');
      await assertReadable(store, records); // this instance follows the rotation it did not run
      await assertReadable(await data.open(), records);

      const result = await rekeyStore(store, { resume: true, pauseMs: 0 });
      assert.equal(result.dataKey, mid.active);
      assert.deepEqual(result.dropped, [oldKey]);
      assert.deepEqual([...(await data.inspect()).sealedBy], [mid.active]);
      await assertReadable(store, records);
    });

    it('a value that does not open stops the rekey with a typed error naming it; the old key stays', async (t) => {
      const data = await open(t);
      const store = await data.open();
      const records = await writeMany(store, 4);
      const oldKey = (await data.inspect()).active;
      const damaged = records[2]!.key.server;
      await data.damage(damaged);
      await assert.rejects(
        rekeyStore(store, { pauseMs: 0 }),
        latchkeyError('STORE_KEY_MISMATCH', (e) => assert.ok(e.message.includes(damaged), e.message)),
      );
      const keys = new Set((await data.inspect()).keys.map((k) => k.id));
      assert.ok(keys.has(oldKey), 'the old data key is kept');
      await assertReadable(
        store,
        records.filter((r) => r.key.server !== damaged),
      );

      // Replacing the damaged credential (a new login) lets the rotation finish.
      const [replaced] = await writeMany(store, 1, 2);
      await rekeyStore(store, { resume: true, pauseMs: 0 });
      assert.equal(new Set((await data.inspect()).keys.map((k) => k.id)).size, 1);
      await assertReadable(store, [...records.filter((r) => r.key.server !== damaged), replaced!]);
    });
  });
}
