// The behaviour every CredentialStore must have, as one reusable suite. Each store's test file
// calls `storeContract(name, open)`; `open` gives a fresh, empty store per test.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it, type TestContext } from 'node:test';

import { type CredentialKey, keyId } from '../../src/credential/key.js';
import type { CredentialRecord, CredentialStatus, StoredCredential } from '../../src/credential/model.js';
import { type ErrorCode, isLatchkeyError, type LatchkeyError } from '../../src/errors.js';
import type {
  CredentialStore,
  DiscoveryRecord,
  EventInput,
  EventType,
  LeaseHolder,
  LifecycleEvent,
  NewPendingRevocation,
  Registration,
} from '../../src/store/contract.js';
import { batchContract } from './batch-contract.js';
import { dueIndexContract } from './due-contract.js';

export interface ContractSubject {
  store: CredentialStore;
  /** Open the same data again (after the first store was closed, or beside it). */
  reopen?: () => Promise<CredentialStore>;
  /** Close everything `open`/`reopen` returned and remove what they created. */
  cleanup: () => Promise<void>;
}

/** A long random token-like string: easy to search for in raw bytes, never a false hit. */
export function secret(prefix: string): string {
  return `${prefix}-${randomBytes(40).toString('base64url')}`;
}

export function credentialKey(n: number | string, overrides: Partial<CredentialKey> = {}): CredentialKey {
  return {
    server: `https://mcp${n}.example.com/mcp`,
    issuer: 'https://as.example.com',
    subject: 'local',
    ...overrides,
  };
}

export function credentialRecord(
  key: CredentialKey,
  overrides: Partial<CredentialRecord> = {},
): CredentialRecord {
  return {
    key,
    secrets: { accessToken: secret('at'), refreshToken: secret('rt'), idToken: secret('idt') },
    tokenType: 'Bearer',
    scopes: ['mcp:read', 'mcp:write'],
    clientId: 'client-contract',
    obtainedAt: 1_700_000_000_000,
    expiresAt: 1_700_000_360_000,
    expirySource: 'expires_in',
    refreshTokenExpiresAt: 1_700_086_400_000,
    owned: true,
    ...overrides,
  };
}

export function eventFor(
  key: CredentialKey,
  type: EventType = 'acquired',
  extra: Partial<EventInput> = {},
): EventInput {
  return { type, server: key.server, issuer: key.issuer, subject: key.subject, ...extra };
}

/** A validator for `assert.rejects`: a LatchkeyError with `code` (and whatever `more` checks). */
export function latchkeyError(code: ErrorCode, more?: (error: LatchkeyError) => void) {
  return (error: unknown): true => {
    assert.ok(isLatchkeyError(error), `expected a LatchkeyError ${code}, got: ${String(error)}`);
    assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    more?.(error);
    return true;
  };
}

/** A queued revocation for `key`, due at `nextAttemptAt` (default: now). */
export function pendingRevocation(
  key: CredentialKey,
  overrides: Partial<NewPendingRevocation> = {},
): NewPendingRevocation {
  const now = Date.now();
  return {
    key,
    tokenType: 'refresh_token',
    clientId: 'client-contract',
    tokenEndpointAuthMethod: 'client_secret_basic',
    createdAt: now,
    expiresAt: now + 86_400_000,
    nextAttemptAt: now,
    secrets: { token: secret('rt'), clientSecret: secret('cs') },
    ...overrides,
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

/** The record a StoredCredential was written from (drops what the store adds). */
function written(stored: StoredCredential): CredentialRecord {
  const { generation: _g, status: _s, updatedAt: _u, ...record } = stored;
  return record;
}

const holderA: LeaseHolder = { owner: 'host-a:101:aaaa', pid: 101, host: 'host-a' };
const holderB: LeaseHolder = { owner: 'host-b:202:bbbb', pid: 202, host: 'host-b' };

const WATCH_POLL_MS = 50;
/** How long a watch may take to deliver: a few poll intervals, well under a second. */
const DELIVERY_MS = 1000;

export function storeContract(name: string, open: () => Promise<ContractSubject>): void {
  describe(`store contract: ${name}`, () => {
    let subject: ContractSubject;
    let store: CredentialStore;
    beforeEach(async () => {
      subject = await open();
      store = subject.store;
    });
    afterEach(async () => {
      await subject.cleanup();
    });

    /** Write a fresh credential with `expectedGeneration: 0` and return its record. */
    async function create(key: CredentialKey, overrides: Partial<CredentialRecord> = {}) {
      const record = credentialRecord(key, overrides);
      const result = await store.writeCredential(record, { expectedGeneration: 0 }, eventFor(key));
      assert.deepEqual(result, { ok: true, generation: 1 });
      return record;
    }

    /** Asserts that nothing observable changed: the credential and the event log. */
    async function snapshot(key: CredentialKey) {
      return {
        credential: await store.getCredential(key),
        all: await store.listCredentials(),
        lease: await store.getLease(key),
        lastEventId: await store.lastEventId(),
        events: await store.readEvents(),
      };
    }

    describe('credentials', () => {
      it('reads nothing from an empty store', async () => {
        assert.equal(await store.getCredential(credentialKey(1)), undefined);
        assert.deepEqual(await store.listCredentials(), []);
        assert.deepEqual(await store.listCredentials({ server: credentialKey(1).server }), []);
      });

      it('creates with expectedGeneration 0 and reads back every field', async () => {
        const key = credentialKey(1);
        const before = Date.now();
        const record = await create(key);
        const stored = await store.getCredential(key);
        assert.ok(stored !== undefined);
        assert.deepEqual(written(stored), record);
        assert.equal(stored.generation, 1);
        assert.equal(stored.status.state, 'valid');
        assert.equal(stored.status.failures, 0);
        assert.ok(stored.updatedAt >= before && stored.updatedAt <= Date.now() + 1, 'updatedAt is now');
        assert.deepEqual(await store.listCredentials(), [stored]);
      });

      it('keeps absent optional fields absent', async () => {
        const key = credentialKey(1);
        const record: CredentialRecord = {
          key,
          secrets: { accessToken: secret('at') },
          tokenType: 'DPoP',
          scopes: [],
          clientId: 'c',
          obtainedAt: 5,
          expirySource: 'none',
          owned: false,
        };
        assert.deepEqual(await store.writeCredential(record, { expectedGeneration: 0 }, eventFor(key)), {
          ok: true,
          generation: 1,
        });
        const stored = await store.getCredential(key);
        assert.ok(stored !== undefined);
        assert.deepEqual(written(stored), record);
        for (const field of ['expiresAt', 'refreshTokenExpiresAt'] as const) assert.ok(!(field in stored));
        for (const field of ['refreshToken', 'idToken'] as const) assert.ok(!(field in stored.secrets));
      });

      it('keys may hold any text: NUL (login leases use it) and backslashes round-trip', async () => {
        const login = credentialKey(1, { issuer: '\u0000login', subject: 'a\\0b' });
        const near = credentialKey(1, { issuer: '\\0login', subject: 'a\u0000b' });
        const lease = await store.acquireLease(login, holderA, 60_000);
        assert.deepEqual(lease?.key, login);
        assert.deepEqual(await store.getLease(login), lease);
        assert.equal(await store.getLease(near), undefined, 'an escaped look-alike is another key');
        assert.deepEqual(
          (await store.listLeases({ issuer: '\u0000login' })).map((l) => l.key),
          [login],
        );
        await create(near);
        assert.deepEqual((await store.getCredential(near))?.key, near);
        assert.equal(await store.getCredential(login), undefined);
        const [event] = await store.readEvents();
        assert.deepEqual([event?.issuer, event?.subject], [near.issuer, near.subject]);
        const [listed] = await store.listCredentials({ subject: 'a\u0000b' });
        assert.deepEqual(listed?.key, near);
      });

      it('tells credentials apart by server, issuer and subject', async () => {
        const keys: CredentialKey[] = [];
        for (const server of ['https://a.example.com/mcp', 'https://b.example.com/mcp'])
          for (const issuer of ['https://as1.example.com', 'https://as2.example.com'])
            for (const subject of ['local', 'user-2']) keys.push({ server, issuer, subject });
        const records = new Map<string, CredentialRecord>();
        for (const key of keys) records.set(keyId(key), await create(key));

        for (const key of keys) {
          const stored = await store.getCredential(key);
          assert.ok(stored !== undefined);
          assert.deepEqual(written(stored), records.get(keyId(key)));
        }
        const ids = async (filter?: Parameters<CredentialStore['listCredentials']>[0]) =>
          (await store.listCredentials(filter)).map((c) => keyId(c.key)).sort();
        const expect = (pred: (k: CredentialKey) => boolean) => keys.filter(pred).map(keyId).sort();

        assert.deepEqual(
          await ids(),
          expect(() => true),
        );
        assert.deepEqual(
          await ids({}),
          expect(() => true),
        );
        assert.deepEqual(
          await ids({ server: 'https://a.example.com/mcp' }),
          expect((k) => k.server === 'https://a.example.com/mcp'),
        );
        assert.deepEqual(
          await ids({ issuer: 'https://as2.example.com' }),
          expect((k) => k.issuer === 'https://as2.example.com'),
        );
        assert.deepEqual(
          await ids({ subject: 'user-2' }),
          expect((k) => k.subject === 'user-2'),
        );
        assert.deepEqual(
          await ids({
            server: 'https://b.example.com/mcp',
            issuer: 'https://as1.example.com',
            subject: 'local',
          }),
          [
            keyId({
              server: 'https://b.example.com/mcp',
              issuer: 'https://as1.example.com',
              subject: 'local',
            }),
          ],
        );
        assert.deepEqual(await ids({ server: 'https://nowhere.example.com' }), []);
        // Prefixes and near misses do not match.
        assert.deepEqual(await ids({ server: 'https://a.example.com' }), []);
        assert.equal(
          await store.getCredential({
            server: 'https://a.example.com/mcp',
            issuer: 'https://as1.example.com',
            subject: 'LOCAL',
          }),
          undefined,
        );
        // Listed credentials carry their secrets and the store's fields.
        for (const c of await store.listCredentials({ subject: 'local' })) {
          assert.deepEqual(written(c), records.get(keyId(c.key)));
          assert.equal(c.generation, 1);
        }
      });

      it('replaces with expectedGeneration n and increments the generation', async () => {
        const key = credentialKey(1);
        await create(key);
        for (let generation = 1; generation <= 3; generation++) {
          const next = credentialRecord(key, { obtainedAt: 1_800_000_000_000 + generation });
          const result = await store.writeCredential(
            next,
            { expectedGeneration: generation },
            eventFor(key, 'refreshed'),
          );
          assert.deepEqual(result, { ok: true, generation: generation + 1 });
          const stored = await store.getCredential(key);
          assert.ok(stored !== undefined);
          assert.equal(stored.generation, generation + 1);
          assert.deepEqual(written(stored), next);
        }
        assert.equal((await store.listCredentials()).length, 1);
      });

      it("writes unconditionally with expectedGeneration 'any'", async () => {
        const key = credentialKey(1);
        const first = credentialRecord(key);
        assert.deepEqual(await store.writeCredential(first, { expectedGeneration: 'any' }, eventFor(key)), {
          ok: true,
          generation: 1,
        });
        const second = credentialRecord(key, { clientId: 'other-client' });
        assert.deepEqual(await store.writeCredential(second, { expectedGeneration: 'any' }, eventFor(key)), {
          ok: true,
          generation: 2,
        });
        const stored = await store.getCredential(key);
        assert.ok(stored !== undefined);
        assert.deepEqual(written(stored), second);
        assert.equal(stored.generation, 2);
      });

      it('refuses a create over an existing credential (generation-mismatch)', async () => {
        const key = credentialKey(1);
        await create(key);
        const before = await snapshot(key);
        const result = await store.writeCredential(
          credentialRecord(key),
          { expectedGeneration: 0 },
          eventFor(key),
        );
        assert.deepEqual(result, { ok: false, reason: 'generation-mismatch', currentGeneration: 1 });
        assert.deepEqual(await snapshot(key), before, 'a refused write changes nothing and logs nothing');
      });

      it('refuses a stale generation (generation-mismatch) and changes nothing', async () => {
        const key = credentialKey(1);
        await create(key);
        await store.writeCredential(
          credentialRecord(key),
          { expectedGeneration: 1 },
          eventFor(key, 'refreshed'),
        );
        const before = await snapshot(key);
        for (const expectedGeneration of [1, 3, 99]) {
          const result = await store.writeCredential(
            credentialRecord(key),
            { expectedGeneration },
            eventFor(key, 'refreshed'),
          );
          assert.deepEqual(result, { ok: false, reason: 'generation-mismatch', currentGeneration: 2 });
        }
        assert.deepEqual(await snapshot(key), before);
      });

      it('refuses a conditional write to an absent credential (missing)', async () => {
        const key = credentialKey(1);
        await create(credentialKey(2)); // an unrelated credential and event
        const before = await snapshot(key);
        const result = await store.writeCredential(
          credentialRecord(key),
          { expectedGeneration: 1 },
          eventFor(key, 'refreshed'),
        );
        assert.deepEqual(result, { ok: false, reason: 'missing' });
        assert.deepEqual(await snapshot(key), before);
        assert.equal(await store.getCredential(key), undefined);
      });

      it('refuses a write under a lease the writer does not hold (lease-lost)', async () => {
        const key = credentialKey(1);
        // No lease at all, credential absent.
        let before = await snapshot(key);
        assert.deepEqual(
          await store.writeCredential(
            credentialRecord(key),
            { expectedGeneration: 0, leaseOwner: holderA.owner },
            eventFor(key),
          ),
          { ok: false, reason: 'lease-lost' },
        );
        assert.deepEqual(await snapshot(key), before);

        await create(key);
        // No lease, credential present.
        before = await snapshot(key);
        assert.deepEqual(
          await store.writeCredential(
            credentialRecord(key),
            { expectedGeneration: 1, leaseOwner: holderA.owner },
            eventFor(key, 'refreshed'),
          ),
          { ok: false, reason: 'lease-lost', currentGeneration: 1 },
        );
        assert.deepEqual(await snapshot(key), before);

        // Someone else holds it.
        assert.ok(await store.acquireLease(key, holderB, 60_000));
        before = await snapshot(key);
        for (const expectedGeneration of [1, 'any'] as const) {
          assert.deepEqual(
            await store.writeCredential(
              credentialRecord(key),
              { expectedGeneration, leaseOwner: holderA.owner },
              eventFor(key, 'refreshed'),
            ),
            { ok: false, reason: 'lease-lost', currentGeneration: 1 },
          );
        }
        assert.deepEqual(await snapshot(key), before);
      });

      it('writes while the writer holds the lease, and still checks the generation', async () => {
        const key = credentialKey(1);
        await create(key);
        assert.ok(await store.acquireLease(key, holderA, 60_000));
        const stale = await store.writeCredential(
          credentialRecord(key),
          { expectedGeneration: 7, leaseOwner: holderA.owner },
          eventFor(key, 'refreshed'),
        );
        assert.deepEqual(stale, { ok: false, reason: 'generation-mismatch', currentGeneration: 1 });
        const next = credentialRecord(key);
        const result = await store.writeCredential(
          next,
          { expectedGeneration: 1, leaseOwner: holderA.owner },
          eventFor(key, 'refreshed'),
        );
        assert.deepEqual(result, { ok: true, generation: 2 });
        const stored = await store.getCredential(key);
        assert.ok(stored !== undefined);
        assert.deepEqual(written(stored), next);
        // The write leaves the lease alone; releasing it is the holder's business.
        assert.equal((await store.getLease(key))?.owner, holderA.owner);
      });

      it('a successful write resets the status to valid with zero failures', async () => {
        const key = credentialKey(1);
        await create(key);
        const failing: CredentialStatus = {
          state: 'retrying',
          failures: 4,
          nextAttemptAt: Date.now() + 60_000,
          lastRefreshAt: 1_000,
          lastError: { code: 'REFRESH_TRANSIENT', message: 'HTTP 503', at: 2_000 },
        };
        await store.updateStatus(key, failing);
        assert.deepEqual((await store.getCredential(key))?.status, failing);
        for (const [generation, type] of [
          [1, 'refreshed'],
          [2, 'acquired'],
        ] as const) {
          await store.updateStatus(key, { state: 'needs-login', failures: 9, lastError: failing.lastError! });
          const result = await store.writeCredential(
            credentialRecord(key),
            { expectedGeneration: generation },
            eventFor(key, type),
          );
          assert.equal(result.ok, true);
          const status = (await store.getCredential(key))?.status;
          assert.ok(status !== undefined);
          assert.equal(status.state, 'valid');
          assert.equal(status.failures, 0);
          assert.equal(status.lastError, undefined);
          assert.equal(status.nextAttemptAt, undefined);
        }
      });

      it('logs each write as an event carrying the new generation', async () => {
        const key = credentialKey(1);
        const before = Date.now();
        await create(key);
        await store.writeCredential(
          credentialRecord(key),
          { expectedGeneration: 1 },
          eventFor(key, 'refreshed', { detail: { ms: 12, rotated: true, code: 'ok' } }),
        );
        const events = await store.readEvents();
        assert.equal(events.length, 2);
        const [created, refreshed] = events;
        assert.ok(created !== undefined && refreshed !== undefined);
        assert.equal(created.type, 'acquired');
        assert.equal(created.generation, 1);
        assert.equal(refreshed.type, 'refreshed');
        assert.equal(refreshed.generation, 2);
        assert.deepEqual(refreshed.detail, { ms: 12, rotated: true, code: 'ok' });
        for (const e of events) {
          assert.equal(e.server, key.server);
          assert.equal(e.issuer, key.issuer);
          assert.equal(e.subject, key.subject);
          assert.equal(e.pid, process.pid);
          assert.ok(e.at >= before && e.at <= Date.now() + 1);
        }
        assert.equal(await store.lastEventId(), refreshed.id);
      });
    });

    describe('updateStatus', () => {
      it('changes the status only: tokens, generation and fields stay', async () => {
        const key = credentialKey(1);
        const record = await create(key);
        await store.writeCredential(record, { expectedGeneration: 1 }, eventFor(key, 'refreshed'));
        const status: CredentialStatus = {
          state: 'needs-login',
          failures: 2,
          nextAttemptAt: 123,
          lastRefreshAt: 100,
          lastError: { code: 'LOGIN_REQUIRED', message: 'invalid_grant', at: 99 },
        };
        const lastEventId = await store.lastEventId();
        await store.updateStatus(key, status);
        const stored = await store.getCredential(key);
        assert.ok(stored !== undefined);
        assert.deepEqual(written(stored), record);
        assert.equal(stored.generation, 2);
        assert.deepEqual(stored.status, status);
        assert.equal(await store.lastEventId(), lastEventId, 'no event unless one is given');

        await store.updateStatus(
          key,
          { state: 'retrying', failures: 3 },
          eventFor(key, 'refresh-failed', { detail: { code: 'HTTP_503' } }),
        );
        const after = await store.getCredential(key);
        assert.deepEqual(after?.status, { state: 'retrying', failures: 3 });
        assert.equal(after?.generation, 2);
        const [event] = await store.readEvents({ afterId: lastEventId });
        assert.equal(event?.type, 'refresh-failed');
        assert.deepEqual(event?.detail, { code: 'HTTP_503' });

        // Generation-conditioned writes still see generation 2.
        assert.deepEqual(
          await store.writeCredential(record, { expectedGeneration: 2 }, eventFor(key, 'refreshed')),
          { ok: true, generation: 3 },
        );
      });

      it('is a no-op on an absent credential: nothing created, no event', async () => {
        const key = credentialKey(1);
        await create(credentialKey(2));
        const before = await snapshot(key);
        await store.updateStatus(key, { state: 'needs-login', failures: 1 });
        await store.updateStatus(key, { state: 'needs-login', failures: 1 }, eventFor(key, 'needs-login'));
        assert.deepEqual(await snapshot(key), before);
        assert.equal(await store.getCredential(key), undefined);
        assert.deepEqual(
          await store.writeCredential(credentialRecord(key), { expectedGeneration: 0 }, eventFor(key)),
          { ok: true, generation: 1 },
          'still absent, so a create succeeds',
        );
      });
    });

    describe('deleteCredential', () => {
      it('returns false for an absent credential and logs nothing', async () => {
        const key = credentialKey(1);
        await create(credentialKey(2));
        const before = await snapshot(key);
        for (const expectedGeneration of ['any', 0, 1] as const)
          assert.equal(
            await store.deleteCredential(key, { expectedGeneration }, eventFor(key, 'deleted')),
            false,
          );
        assert.deepEqual(await snapshot(key), before);
      });

      it('refuses when the generation does not match, and changes nothing', async () => {
        const key = credentialKey(1);
        await create(key);
        const before = await snapshot(key);
        for (const expectedGeneration of [0, 2])
          assert.equal(
            await store.deleteCredential(key, { expectedGeneration }, eventFor(key, 'deleted')),
            false,
          );
        assert.deepEqual(await snapshot(key), before);
      });

      it('refuses when another owner holds the lease, and keeps that lease', async () => {
        const key = credentialKey(1);
        await create(key);
        assert.ok(await store.acquireLease(key, holderB, 60_000));
        const before = await snapshot(key);
        assert.equal(
          await store.deleteCredential(
            key,
            { expectedGeneration: 'any', leaseOwner: holderA.owner },
            eventFor(key, 'deleted'),
          ),
          false,
        );
        assert.deepEqual(await snapshot(key), before);
        assert.equal((await store.getLease(key))?.owner, holderB.owner);
      });

      it('deletes with a matching generation and appends the event', async () => {
        const key = credentialKey(1);
        const other = credentialKey(2);
        await create(key);
        const otherRecord = await create(other);
        const lastEventId = await store.lastEventId();
        assert.equal(
          await store.deleteCredential(
            key,
            { expectedGeneration: 1 },
            eventFor(key, 'deleted', { detail: { reason: 'logout' } }),
          ),
          true,
        );
        assert.equal(await store.getCredential(key), undefined);
        assert.deepEqual(
          (await store.listCredentials()).map((c) => written(c)),
          [otherRecord],
        );
        const events = await store.readEvents({ afterId: lastEventId });
        assert.equal(events.length, 1);
        assert.equal(events[0]?.type, 'deleted');
        assert.equal(events[0]?.server, key.server);
        assert.deepEqual(events[0]?.detail, { reason: 'logout' });
        // Deleting again: absent now.
        assert.equal(
          await store.deleteCredential(key, { expectedGeneration: 'any' }, eventFor(key, 'deleted')),
          false,
        );
        // A new login starts over at generation 1.
        assert.deepEqual(
          await store.writeCredential(credentialRecord(key), { expectedGeneration: 0 }, eventFor(key)),
          { ok: true, generation: 1 },
        );
      });

      it('deleting under the held lease removes the lease too', async () => {
        const key = credentialKey(1);
        await create(key);
        assert.ok(await store.acquireLease(key, holderA, 60_000));
        assert.equal(
          await store.deleteCredential(
            key,
            { expectedGeneration: 1, leaseOwner: holderA.owner },
            eventFor(key, 'revoked'),
          ),
          true,
        );
        assert.equal(await store.getCredential(key), undefined);
        assert.equal(await store.getLease(key), undefined);
        assert.equal(
          (await store.acquireLease(key, holderB, 60_000))?.owner,
          holderB.owner,
          'free for others',
        );
      });

      it("an unconditional delete removes whoever's lease is on the credential", async () => {
        const key = credentialKey(1);
        await create(key);
        assert.ok(await store.acquireLease(key, holderB, 60_000));
        assert.equal(
          await store.deleteCredential(key, { expectedGeneration: 'any' }, eventFor(key, 'deleted')),
          true,
        );
        assert.equal(await store.getLease(key), undefined);
        const [last] = (await store.readEvents()).slice(-1);
        assert.equal(last?.type, 'deleted');
      });
    });

    describe('registrations', () => {
      const issuer = 'https://as.example.com';
      const full: Registration = {
        issuer,
        clientId: 'client-full',
        clientSecret: secret('cs'),
        tokenEndpointAuthMethod: 'client_secret_basic',
        method: 'dynamic',
        metadata: { redirect_uris: ['http://127.0.0.1/callback'], client_name: 'latchkey', n: 3 },
        registeredAt: 1_700_000_000_000,
        clientSecretExpiresAt: 1_800_000_000_000,
      };
      const publicClient: Registration = {
        issuer: 'https://other-as.example.com',
        clientId: 'https://latchkey.example/client.json',
        tokenEndpointAuthMethod: 'none',
        method: 'client-id-metadata-document',
        registeredAt: 1_700_000_000_001,
      };

      it('round-trips with and without a client secret', async () => {
        assert.equal(await store.getRegistration(issuer), undefined);
        await store.putRegistration(full);
        await store.putRegistration(publicClient);
        assert.deepEqual(await store.getRegistration(issuer), full);
        const got = await store.getRegistration(publicClient.issuer);
        assert.deepEqual(got, publicClient);
        assert.ok(got !== undefined && !('clientSecret' in got), 'no clientSecret property at all');
        assert.ok(!('metadata' in got));
      });

      it('put replaces (including dropping a secret), delete removes', async () => {
        await store.putRegistration(full);
        const replaced: Registration = {
          issuer,
          clientId: 'client-replaced',
          tokenEndpointAuthMethod: 'none',
          method: 'pre-registered',
          registeredAt: 5,
        };
        await store.putRegistration(replaced);
        const got = await store.getRegistration(issuer);
        assert.deepEqual(got, replaced);
        assert.ok(got !== undefined && !('clientSecret' in got));
        await store.putRegistration(full);
        assert.deepEqual(await store.getRegistration(issuer), full);

        await store.putRegistration(publicClient);
        await store.deleteRegistration(issuer);
        assert.equal(await store.getRegistration(issuer), undefined);
        assert.deepEqual(await store.getRegistration(publicClient.issuer), publicClient, 'others stay');
        await store.deleteRegistration(issuer); // absent: no error
        await store.deleteRegistration('https://never.example.com');
      });
    });

    describe('discovery cache', () => {
      const resource: DiscoveryRecord = {
        kind: 'protected-resource',
        id: 'https://mcp.example.com/mcp',
        document: {
          resource: 'https://mcp.example.com/mcp',
          authorization_servers: ['https://as.example.com'],
        },
        sourceUrl: 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp',
        fetchedAt: 1_700_000_000_000,
      };
      const as: DiscoveryRecord = {
        kind: 'authorization-server',
        id: 'https://mcp.example.com/mcp', // same id, other kind: a separate entry
        document: { issuer: 'https://mcp.example.com/mcp', nested: { a: [1, 2, { b: null }] }, flag: false },
        sourceUrl: 'https://mcp.example.com/.well-known/oauth-authorization-server/mcp',
        fetchedAt: 1_700_000_000_002,
      };

      it('puts, gets, replaces and deletes per (kind, id)', async () => {
        assert.equal(await store.getDiscovery('protected-resource', resource.id), undefined);
        await store.putDiscovery(resource);
        await store.putDiscovery(as);
        assert.deepEqual(await store.getDiscovery('protected-resource', resource.id), resource);
        assert.deepEqual(await store.getDiscovery('authorization-server', as.id), as);
        assert.equal(await store.getDiscovery('protected-resource', 'https://mcp.example.com'), undefined);

        const refreshed: DiscoveryRecord = { ...resource, document: { resource: resource.id }, fetchedAt: 9 };
        await store.putDiscovery(refreshed);
        assert.deepEqual(await store.getDiscovery('protected-resource', resource.id), refreshed);

        await store.deleteDiscovery('protected-resource', resource.id);
        assert.equal(await store.getDiscovery('protected-resource', resource.id), undefined);
        assert.deepEqual(await store.getDiscovery('authorization-server', as.id), as, 'the other kind stays');
        await store.deleteDiscovery('protected-resource', resource.id); // absent: no error
      });
    });

    describe('leases', () => {
      it('acquires a free lease (no credential needed) and reports it', async () => {
        const key = credentialKey('login');
        assert.equal(await store.getLease(key), undefined);
        const before = Date.now();
        const lease = await store.acquireLease(key, holderA, 60_000);
        const after = Date.now();
        assert.ok(lease !== undefined);
        assert.deepEqual(lease.key, key);
        assert.equal(lease.owner, holderA.owner);
        assert.equal(lease.pid, holderA.pid);
        assert.equal(lease.host, holderA.host);
        assert.ok(lease.acquiredAt >= before && lease.acquiredAt <= after);
        assert.ok(lease.expiresAt >= before + 60_000 && lease.expiresAt <= after + 60_000);
        assert.deepEqual(await store.getLease(key), lease);
        assert.equal(await store.getCredential(key), undefined, 'a lease creates no credential');
      });

      it('refuses while another live holder has it', async () => {
        const key = credentialKey(1);
        const lease = await store.acquireLease(key, holderA, 60_000);
        assert.equal(await store.acquireLease(key, holderB, 60_000), undefined);
        assert.equal(
          await store.acquireLease(key, { ...holderB, pid: holderA.pid, host: holderA.host }, 60_000),
          undefined,
          'owner is the identity',
        );
        assert.deepEqual(await store.getLease(key), lease);
        // Leases are per credential.
        assert.equal((await store.acquireLease(credentialKey(2), holderB, 60_000))?.owner, holderB.owner);
        assert.equal(
          (await store.acquireLease(credentialKey(1, { subject: 'user-2' }), holderB, 60_000))?.owner,
          holderB.owner,
        );
        assert.deepEqual(await store.getLease(key), lease);
      });

      it('re-acquiring by the same owner extends it and keeps acquiredAt', async () => {
        const key = credentialKey(1);
        const first = await store.acquireLease(key, holderA, 1_000);
        assert.ok(first !== undefined);
        await sleep(15);
        const second = await store.acquireLease(key, holderA, 60_000);
        assert.ok(second !== undefined);
        assert.equal(second.owner, holderA.owner);
        assert.equal(second.acquiredAt, first.acquiredAt);
        assert.ok(second.expiresAt > first.expiresAt + 50_000);
        assert.deepEqual(await store.getLease(key), second);
      });

      it('lists live leases by server, issuer and subject, oldest first', async () => {
        const one = await store.acquireLease(credentialKey(1), holderA, 60_000);
        await sleep(5);
        const two = await store.acquireLease(credentialKey(2), holderB, 60_000);
        await store.acquireLease(credentialKey(3), holderB, 30);
        await sleep(60);
        const all = await store.listLeases();
        assert.deepEqual(all, [one, two], 'expired leases are not listed');
        assert.deepEqual(await store.listLeases({ server: credentialKey(2).server }), [two]);
        const other = await store.acquireLease(
          credentialKey(1, { subject: 'user-2', issuer: 'https://b.example' }),
          holderA,
          60_000,
        );
        assert.deepEqual(await store.listLeases({ subject: 'user-2' }), [other]);
        assert.deepEqual(await store.listLeases({ issuer: 'https://as.example.com' }), [one, two]);
        assert.deepEqual(await store.listLeases({ server: 'https://nowhere.example/mcp' }), []);
        (all[0]!.key as { server: string }).server = 'mutated';
        assert.deepEqual((await store.listLeases())[0], one, 'callers get copies');
        assert.equal((await store.listLeases()).length, 3);
      });

      it('an expired lease is gone for readers and free for anyone', async () => {
        const key = credentialKey(1);
        const first = await store.acquireLease(key, holderA, 50);
        assert.ok(first !== undefined);
        await sleep(80);
        assert.equal(await store.getLease(key), undefined, 'expired leases are not reported');
        const taken = await store.acquireLease(key, holderB, 60_000);
        assert.ok(taken !== undefined);
        assert.equal(taken.owner, holderB.owner);
        assert.ok(taken.acquiredAt > first.acquiredAt, 'a new holder starts a new lease');
        assert.deepEqual(await store.getLease(key), taken);
        assert.equal(await store.acquireLease(key, holderA, 60_000), undefined);
      });

      it('an expired lease re-acquired by its old owner is live again', async () => {
        const key = credentialKey(1);
        assert.ok(await store.acquireLease(key, holderA, 50));
        await sleep(80);
        const again = await store.acquireLease(key, holderA, 60_000);
        assert.ok(again !== undefined);
        assert.ok(again.expiresAt > Date.now() + 50_000);
        assert.deepEqual(await store.getLease(key), again);
      });

      it('releaseLease works only for the owner', async () => {
        const key = credentialKey(1);
        const lease = await store.acquireLease(key, holderA, 60_000);
        await store.releaseLease(key, holderB.owner);
        assert.deepEqual(await store.getLease(key), lease);
        await store.releaseLease(credentialKey(2), holderA.owner); // another key: no effect
        assert.deepEqual(await store.getLease(key), lease);
        await store.releaseLease(key, holderA.owner);
        assert.equal(await store.getLease(key), undefined);
        await store.releaseLease(key, holderA.owner); // absent: no error
        assert.ok(await store.acquireLease(key, holderB, 60_000), 'free after release');
      });

      it('breakLease removes only the named stale owner', async () => {
        const key = credentialKey(1);
        assert.equal(await store.breakLease(key, holderA.owner), false, 'nothing to break');
        const lease = await store.acquireLease(key, holderA, 60_000);
        assert.equal(await store.breakLease(key, holderB.owner), false, 'changed hands: not broken');
        assert.deepEqual(await store.getLease(key), lease);
        assert.equal(await store.breakLease(credentialKey(2), holderA.owner), false);
        assert.equal(await store.breakLease(key, holderA.owner), true);
        assert.equal(await store.getLease(key), undefined);
        assert.equal(await store.breakLease(key, holderA.owner), false, 'already broken');
        assert.equal((await store.acquireLease(key, holderB, 60_000))?.owner, holderB.owner);
      });

      it('lease operations append no events', async () => {
        const key = credentialKey(1);
        await store.acquireLease(key, holderA, 60_000);
        await store.acquireLease(key, holderA, 60_000);
        await store.releaseLease(key, holderA.owner);
        await store.acquireLease(key, holderB, 60_000);
        await store.breakLease(key, holderB.owner);
        assert.equal(await store.lastEventId(), 0);
      });
    });

    dueIndexContract(() => store);
    batchContract(() => subject);

    describe('events', () => {
      it('appends with increasing ids, defaults at/pid and keeps explicit ones', async () => {
        assert.equal(await store.lastEventId(), 0);
        assert.deepEqual(await store.readEvents(), []);
        const key = credentialKey(1);
        const before = Date.now();
        const first = await store.appendEvent(eventFor(key, 'reconnect'));
        assert.ok(first.id > 0);
        assert.equal(first.type, 'reconnect');
        assert.equal(first.server, key.server);
        assert.equal(first.pid, process.pid);
        assert.ok(first.at >= before && first.at <= Date.now() + 1);
        assert.ok(!('generation' in first));
        assert.ok(!('detail' in first));

        const second = await store.appendEvent(
          eventFor(key, 'needs-login', {
            at: 42,
            pid: 4242,
            generation: 7,
            detail: { code: 'X', n: 1, ok: false },
          }),
        );
        assert.ok(second.id > first.id);
        assert.equal(second.at, 42);
        assert.equal(second.pid, 4242);
        assert.equal(second.generation, 7);
        assert.deepEqual(second.detail, { code: 'X', n: 1, ok: false });
        assert.deepEqual(await store.readEvents(), [first, second]);
        assert.equal(await store.lastEventId(), second.id);

        let previous = second.id;
        for (let i = 0; i < 20; i++) {
          const e = await store.appendEvent(eventFor(key, 'reconnect'));
          assert.ok(e.id > previous, `id ${e.id} after ${previous}`);
          previous = e.id;
        }
        assert.equal(await store.lastEventId(), previous);
      });

      it('readEvents filters by afterId and server and honours limit, in id order', async () => {
        const a = credentialKey('a');
        const b = credentialKey('b');
        const all: LifecycleEvent[] = [];
        for (let i = 0; i < 10; i++)
          all.push(await store.appendEvent(eventFor(i % 3 === 0 ? b : a, 'reconnect', { detail: { i } })));
        assert.deepEqual(await store.readEvents(), all);
        assert.deepEqual(await store.readEvents({}), all);
        const pivot = all[4]!.id;
        assert.deepEqual(await store.readEvents({ afterId: pivot }), all.slice(5));
        assert.deepEqual(await store.readEvents({ afterId: 0 }), all);
        assert.deepEqual(await store.readEvents({ afterId: all.at(-1)!.id }), []);
        assert.deepEqual(
          await store.readEvents({ server: b.server }),
          all.filter((e) => e.server === b.server),
        );
        assert.deepEqual(await store.readEvents({ server: 'https://none.example.com' }), []);
        assert.deepEqual(await store.readEvents({ limit: 3 }), all.slice(0, 3));
        assert.deepEqual(await store.readEvents({ limit: 100 }), all);
        assert.deepEqual(
          await store.readEvents({ afterId: pivot, server: a.server, limit: 2 }),
          all.filter((e) => e.id > pivot && e.server === a.server).slice(0, 2),
        );
      });

      it('events never contain secrets', async () => {
        const key = credentialKey(1);
        const secrets: string[] = [];
        const record = await create(key);
        secrets.push(record.secrets.accessToken, record.secrets.refreshToken!, record.secrets.idToken!);
        const next = credentialRecord(key);
        secrets.push(next.secrets.accessToken, next.secrets.refreshToken!, next.secrets.idToken!);
        await store.writeCredential(next, { expectedGeneration: 1 }, eventFor(key, 'refreshed'));
        const clientSecret = secret('cs');
        secrets.push(clientSecret);
        await store.putRegistration({
          issuer: key.issuer,
          clientId: 'c',
          clientSecret,
          tokenEndpointAuthMethod: 'client_secret_post',
          method: 'dynamic',
          registeredAt: 1,
        });
        await store.updateStatus(key, { state: 'retrying', failures: 1 }, eventFor(key, 'refresh-failed'));
        await store.deleteCredential(key, { expectedGeneration: 'any' }, eventFor(key, 'deleted'));
        const events = await store.readEvents();
        assert.equal(events.length, 4);
        const text = JSON.stringify(events);
        for (const s of secrets) assert.ok(!text.includes(s), 'a secret leaked into the event log');
      });
    });

    describe('watch', () => {
      it('delivers events appended after subscribing, from appendEvent and writeCredential', async () => {
        const key = credentialKey(1);
        const old = await store.appendEvent(eventFor(key, 'reconnect'));
        const seen: LifecycleEvent[] = [];
        const unsubscribe = store.watch((events) => seen.push(...events), { pollMs: WATCH_POLL_MS });
        try {
          const appended = await store.appendEvent(eventFor(key, 'needs-login', { detail: { code: 'X' } }));
          assert.ok(await eventually(() => seen.length >= 1, DELIVERY_MS), 'appendEvent delivered');
          await create(key);
          assert.ok(await eventually(() => seen.length >= 2, DELIVERY_MS), 'writeCredential delivered');
          await store.updateStatus(key, { state: 'retrying', failures: 1 }, eventFor(key, 'refresh-failed'));
          await store.deleteCredential(key, { expectedGeneration: 'any' }, eventFor(key, 'deleted'));
          assert.ok(await eventually(() => seen.length >= 4, DELIVERY_MS), 'status and delete delivered');
          await sleep(3 * WATCH_POLL_MS);
          assert.deepEqual(seen, await store.readEvents({ afterId: old.id }), 'each event once, in id order');
          assert.deepEqual(seen[0], appended);
          assert.equal(seen[1]?.type, 'acquired');
          assert.equal(seen[1]?.generation, 1);
          assert.ok(
            seen.every((e) => e.id > old.id),
            'no events from before the subscription',
          );
        } finally {
          unsubscribe();
        }
      });

      it('delivers a burst in id order to every watcher', async () => {
        const key = credentialKey(1);
        const first: LifecycleEvent[] = [];
        const second: LifecycleEvent[] = [];
        const stop1 = store.watch((events) => first.push(...events), { pollMs: WATCH_POLL_MS });
        const stop2 = store.watch((events) => second.push(...events), { pollMs: WATCH_POLL_MS });
        try {
          const burst = await Promise.all(
            Array.from({ length: 10 }, (_, i) =>
              store.appendEvent(eventFor(key, 'reconnect', { detail: { i } })),
            ),
          );
          assert.ok(await eventually(() => first.length >= 10 && second.length >= 10, DELIVERY_MS));
          await sleep(2 * WATCH_POLL_MS);
          const sorted = [...burst].sort((x, y) => x.id - y.id);
          assert.deepEqual(first, sorted);
          assert.deepEqual(second, sorted);
        } finally {
          stop1();
          stop2();
        }
      });

      it('stops delivering once unsubscribed', async () => {
        const key = credentialKey(1);
        const seen: LifecycleEvent[] = [];
        const unsubscribe = store.watch((events) => seen.push(...events), { pollMs: WATCH_POLL_MS });
        await store.appendEvent(eventFor(key, 'reconnect'));
        assert.ok(await eventually(() => seen.length === 1, DELIVERY_MS));
        unsubscribe();
        await store.appendEvent(eventFor(key, 'reconnect'));
        await create(key);
        await sleep(4 * WATCH_POLL_MS);
        assert.equal(seen.length, 1);
        unsubscribe(); // twice: harmless
      });

      it('calls no listener after unsubscribe, even for an event appended just before', async () => {
        const key = credentialKey(1);
        const seen: LifecycleEvent[] = [];
        const unsubscribe = store.watch((events) => seen.push(...events), { pollMs: WATCH_POLL_MS });
        await store.appendEvent(eventFor(key, 'reconnect'));
        unsubscribe();
        await create(key);
        await sleep(4 * WATCH_POLL_MS);
        assert.deepEqual(seen, []);
      });

      it('one unsubscribe leaves other watchers running', async () => {
        const key = credentialKey(1);
        const kept: LifecycleEvent[] = [];
        const dropped: LifecycleEvent[] = [];
        const stopKept = store.watch((events) => kept.push(...events), { pollMs: WATCH_POLL_MS });
        const stopDropped = store.watch((events) => dropped.push(...events), { pollMs: WATCH_POLL_MS });
        try {
          stopDropped();
          await store.appendEvent(eventFor(key, 'reconnect'));
          assert.ok(await eventually(() => kept.length === 1, DELIVERY_MS));
          await sleep(2 * WATCH_POLL_MS);
          assert.equal(dropped.length, 0);
        } finally {
          stopKept();
        }
      });
    });

    describe('pending revocations', () => {
      const pendingEvent = (key: CredentialKey) => eventFor(key, 'revocation-pending');

      it('add queues rows and the event atomically; list shows them without secrets, by due time', async () => {
        const later = pendingRevocation(credentialKey(1), { nextAttemptAt: Date.now() + 60_000 });
        const sooner = pendingRevocation(credentialKey(2), {
          tokenType: 'access_token',
          tokenEndpointAuthMethod: 'none',
          secrets: { token: secret('at') },
        });
        const before = await store.lastEventId();
        const added = await store.addPendingRevocations([later, sooner], pendingEvent(credentialKey(1)));
        assert.equal(added.length, 2);
        assert.notEqual(added[0]?.id, added[1]?.id);
        const events = await store.readEvents({ afterId: before });
        assert.deepEqual(
          events.map((e) => e.type),
          ['revocation-pending'],
        );

        const listed = await store.listPendingRevocations();
        assert.deepEqual(
          listed.map((r) => r.key.server),
          [credentialKey(2).server, credentialKey(1).server],
          'soonest first',
        );
        const { secrets: _s, ...publicPart } = sooner;
        assert.deepEqual(listed[0], { ...publicPart, id: added[1]?.id, attempts: 0 });
        assert.ok(!JSON.stringify(listed).includes(later.secrets.token), 'no token in a listing');
        assert.ok(!JSON.stringify(listed).includes(later.secrets.clientSecret ?? '\u0000'));
        assert.deepEqual(
          (await store.listPendingRevocations({ server: credentialKey(1).server })).map((r) => r.id),
          [added[0]?.id],
        );
        assert.deepEqual(await store.listPendingRevocations({ issuer: 'https://nobody.example.com' }), []);
      });

      it('claim returns due rows with their secrets, and no one else gets them while the claim lives', async () => {
        const due = pendingRevocation(credentialKey(1));
        const notYet = pendingRevocation(credentialKey(2), { nextAttemptAt: Date.now() + 60_000 });
        await store.addPendingRevocations([due, notYet], pendingEvent(credentialKey(1)));

        const claimed = await store.claimPendingRevocations({ owner: holderA.owner, ttlMs: 60_000 });
        assert.equal(claimed.length, 1);
        assert.deepEqual(claimed[0]?.secrets, due.secrets);
        assert.equal(claimed[0]?.key.server, due.key.server);
        assert.deepEqual(await store.claimPendingRevocations({ owner: holderB.owner, ttlMs: 60_000 }), []);
        // `now` lets a caller look ahead; the live claim still wins.
        const ahead = await store.claimPendingRevocations({
          owner: holderB.owner,
          ttlMs: 60_000,
          now: Date.now() + 120_000,
        });
        assert.deepEqual(
          ahead.map((r) => r.key.server),
          [notYet.key.server],
        );
        assert.equal(
          (await store.claimPendingRevocations({ owner: holderA.owner, ttlMs: 60_000 })).length,
          1,
          'the holder may claim again (extends)',
        );
      });

      it('an expired claim can be taken over, and the old holder can then neither reschedule nor remove', async () => {
        await store.addPendingRevocations(
          [pendingRevocation(credentialKey(1))],
          pendingEvent(credentialKey(1)),
        );
        const [first] = await store.claimPendingRevocations({ owner: holderA.owner, ttlMs: 30 });
        assert.ok(first);
        await sleep(60);
        const [taken] = await store.claimPendingRevocations({ owner: holderB.owner, ttlMs: 60_000 });
        assert.equal(taken?.id, first.id);
        const lastEvent = await store.lastEventId();
        assert.equal(
          await store.reschedulePendingRevocation(first.id, holderA.owner, {
            attempts: 9,
            nextAttemptAt: 1,
          }),
          false,
        );
        assert.equal(
          await store.removePendingRevocation(
            first.id,
            holderA.owner,
            eventFor(first.key, 'revocation-retried'),
          ),
          false,
        );
        assert.equal(await store.lastEventId(), lastEvent, 'no event for a refused removal');
        const [row] = await store.listPendingRevocations();
        assert.equal(row?.attempts, 0);
      });

      it('reschedule records the attempt and releases the claim; remove deletes and appends the event', async () => {
        await store.addPendingRevocations(
          [pendingRevocation(credentialKey(1)), pendingRevocation(credentialKey(2))],
          pendingEvent(credentialKey(1)),
        );
        const claimed = await store.claimPendingRevocations({
          owner: holderA.owner,
          ttlMs: 60_000,
          limit: 1,
        });
        assert.equal(claimed.length, 1, 'limit');
        const row = claimed[0];
        assert.ok(row);
        const nextAttemptAt = Date.now() - 1;
        assert.equal(
          await store.reschedulePendingRevocation(row.id, holderA.owner, {
            attempts: 1,
            nextAttemptAt,
            lastError: 'HTTP 503',
          }),
          true,
        );
        const listed = (await store.listPendingRevocations()).find((r) => r.id === row.id);
        assert.equal(listed?.attempts, 1);
        assert.equal(listed?.nextAttemptAt, nextAttemptAt);
        assert.equal(listed?.lastError, 'HTTP 503');
        // Released: another owner may take it now that it is due.
        const byB = await store.claimPendingRevocations({ owner: holderB.owner, ttlMs: 60_000 });
        assert.ok(byB.some((r) => r.id === row.id));
        assert.deepEqual(byB.find((r) => r.id === row.id)?.secrets, row.secrets);

        const before = await store.lastEventId();
        assert.equal(
          await store.removePendingRevocation(
            row.id,
            holderB.owner,
            eventFor(row.key, 'revocation-retried', { detail: { outcome: 'revoked' } }),
          ),
          true,
        );
        const events = await store.readEvents({ afterId: before });
        assert.deepEqual(
          events.map((e) => [e.type, e.detail?.['outcome']]),
          [['revocation-retried', 'revoked']],
        );
        assert.ok(!(await store.listPendingRevocations()).some((r) => r.id === row.id));
        assert.equal(
          await store.removePendingRevocation(row.id, holderB.owner, eventFor(row.key, 'revocation-retried')),
          false,
          'already gone',
        );
      });

      it('two store handles claiming at once never get the same row', async (t) => {
        if (subject.reopen === undefined) {
          t.skip('this store has no second handle onto the same data');
          return;
        }
        const other = await subject.reopen();
        const rows = Array.from({ length: 10 }, (_, n) => pendingRevocation(credentialKey(n)));
        await store.addPendingRevocations(rows, pendingEvent(credentialKey(0)));
        const [a, b] = await Promise.all([
          store.claimPendingRevocations({ owner: holderA.owner, ttlMs: 60_000, limit: 6 }),
          other.claimPendingRevocations({ owner: holderB.owner, ttlMs: 60_000, limit: 6 }),
        ]);
        const ids = [...a, ...b].map((r) => r.id);
        assert.equal(new Set(ids).size, ids.length, 'disjoint');
        assert.equal(ids.length, 10);
      });
    });

    describe('DPoP key', () => {
      const record = (): { alg: string; privateJwk: string; createdAt: number } => ({
        alg: 'ES256',
        privateJwk: JSON.stringify({ kty: 'EC', d: secret('d') }),
        createdAt: 1_700_000_000_000,
      });

      it('is made once, then the stored one is returned, by this handle and another', async (t) => {
        const first = record();
        let made = 0;
        const create = (): ReturnType<typeof record> => {
          made++;
          return first;
        };
        assert.deepEqual(await store.dpopKey('ES256', create), first);
        assert.deepEqual(await store.dpopKey('ES256', () => assert.fail('a key is stored already')), first);
        assert.equal(made, 1);
        if (subject.reopen === undefined) {
          t.diagnostic('no second handle onto the same data');
          return;
        }
        const other = await subject.reopen();
        assert.deepEqual(await other.dpopKey('ES256', () => assert.fail('a key is stored already')), first);
      });

      it('two handles racing to make it agree on one key', async (t) => {
        if (subject.reopen === undefined) {
          t.skip('this store has no second handle onto the same data');
          return;
        }
        const other = await subject.reopen();
        const [a, b] = await Promise.all([store.dpopKey('ES256', record), other.dpopKey('ES256', record)]);
        assert.deepEqual(a, b);
      });
    });

    describe('isolation', () => {
      it('returned credentials are copies, and so are written records', async () => {
        const key = credentialKey(1);
        const record = credentialRecord(key);
        const expected = structuredClone(record);
        await store.writeCredential(record, { expectedGeneration: 0 }, eventFor(key));
        // Mutating the input after the write changes nothing.
        record.secrets.accessToken = 'mutated';
        (record.scopes as string[]).push('mutated');
        record.clientId = 'mutated';

        const got = await store.getCredential(key);
        assert.ok(got !== undefined);
        assert.deepEqual(written(got), expected);
        got.secrets.accessToken = 'mutated';
        (got.scopes as string[]).push('mutated');
        got.status.failures = 99;
        got.status.state = 'needs-login';
        got.generation = 42;
        (got.key as { server: string }).server = 'https://mutated.example.com';
        const [listed] = await store.listCredentials();
        assert.ok(listed !== undefined);
        listed.secrets.refreshToken = 'mutated';

        const again = await store.getCredential(key);
        assert.ok(again !== undefined);
        assert.deepEqual(written(again), expected);
        assert.equal(again.generation, 1);
        assert.deepEqual(again.status, { state: 'valid', failures: 0 });
        assert.equal(key.server, credentialKey(1).server, "the caller's key is untouched");
      });

      it('status, registrations, discovery, leases and events are copied too', async () => {
        const key = credentialKey(1);
        await create(key);
        const status: CredentialStatus = {
          state: 'retrying',
          failures: 1,
          lastError: { code: 'A', message: 'm', at: 1 },
        };
        await store.updateStatus(key, status);
        status.lastError!.code = 'mutated';
        assert.equal((await store.getCredential(key))?.status.lastError?.code, 'A');

        const registration: Registration = {
          issuer: key.issuer,
          clientId: 'c',
          tokenEndpointAuthMethod: 'none',
          method: 'dynamic',
          metadata: { redirect_uris: ['http://127.0.0.1/cb'] },
          registeredAt: 1,
        };
        await store.putRegistration(registration);
        (registration.metadata!['redirect_uris'] as string[]).push('mutated');
        const gotRegistration = await store.getRegistration(key.issuer);
        assert.deepEqual(gotRegistration?.metadata, { redirect_uris: ['http://127.0.0.1/cb'] });
        gotRegistration!.clientId = 'mutated';
        assert.equal((await store.getRegistration(key.issuer))?.clientId, 'c');

        const discovery: DiscoveryRecord = {
          kind: 'authorization-server',
          id: key.issuer,
          document: { issuer: key.issuer },
          sourceUrl: 'https://as.example.com/.well-known/oauth-authorization-server',
          fetchedAt: 1,
        };
        await store.putDiscovery(discovery);
        discovery.document['issuer'] = 'mutated';
        const gotDiscovery = await store.getDiscovery('authorization-server', key.issuer);
        assert.equal(gotDiscovery?.document['issuer'], key.issuer);
        gotDiscovery!.document['issuer'] = 'mutated';
        assert.equal(
          (await store.getDiscovery('authorization-server', key.issuer))?.document['issuer'],
          key.issuer,
        );

        const leaseKey = credentialKey(2);
        const lease = await store.acquireLease(leaseKey, holderA, 60_000);
        assert.ok(lease !== undefined);
        lease.expiresAt = 0;
        lease.owner = 'mutated';
        (lease.key as { server: string }).server = 'https://mutated.example.com';
        assert.equal(leaseKey.server, credentialKey(2).server, "the caller's key is untouched");
        const gotLease = await store.getLease(credentialKey(2));
        assert.equal(gotLease?.owner, holderA.owner);
        assert.equal(gotLease?.key.server, credentialKey(2).server);

        const detail = { code: 'A' };
        const event = await store.appendEvent(eventFor(key, 'reconnect', { detail }));
        detail.code = 'mutated';
        event.detail!['code'] = 'mutated';
        const [read] = await store.readEvents({ afterId: event.id - 1 });
        assert.deepEqual(read?.detail, { code: 'A' });
      });
    });

    describe('lifecycle', () => {
      it('operations after close reject with STORE_UNAVAILABLE', async () => {
        const key = credentialKey(1);
        await create(key);
        await store.close();
        await store.close(); // closing twice is harmless
        const unavailable = latchkeyError('STORE_UNAVAILABLE');
        const operations: [string, () => Promise<unknown>][] = [
          ['getCredential', () => store.getCredential(key)],
          ['listCredentials', () => store.listCredentials()],
          [
            'writeCredential',
            () => store.writeCredential(credentialRecord(key), { expectedGeneration: 'any' }, eventFor(key)),
          ],
          ['updateStatus', () => store.updateStatus(key, { state: 'valid', failures: 0 })],
          [
            'deleteCredential',
            () => store.deleteCredential(key, { expectedGeneration: 'any' }, eventFor(key, 'deleted')),
          ],
          ['getRegistration', () => store.getRegistration(key.issuer)],
          [
            'putRegistration',
            () =>
              store.putRegistration({
                issuer: key.issuer,
                clientId: 'c',
                tokenEndpointAuthMethod: 'none',
                method: 'dynamic',
                registeredAt: 1,
              }),
          ],
          ['deleteRegistration', () => store.deleteRegistration(key.issuer)],
          ['getDiscovery', () => store.getDiscovery('protected-resource', key.server)],
          [
            'putDiscovery',
            () =>
              store.putDiscovery({
                kind: 'protected-resource',
                id: key.server,
                document: {},
                sourceUrl: key.server,
                fetchedAt: 1,
              }),
          ],
          ['deleteDiscovery', () => store.deleteDiscovery('protected-resource', key.server)],
          ['acquireLease', () => store.acquireLease(key, holderA, 1000)],
          ['getLease', () => store.getLease(key)],
          ['releaseLease', () => store.releaseLease(key, holderA.owner)],
          ['breakLease', () => store.breakLease(key, holderA.owner)],
          ['appendEvent', () => store.appendEvent(eventFor(key, 'reconnect'))],
          ['readEvents', () => store.readEvents()],
          ['lastEventId', () => store.lastEventId()],
        ];
        for (const [op, call] of operations) {
          let promise: Promise<unknown>;
          try {
            promise = call();
          } catch (error) {
            assert.fail(`${op} threw synchronously instead of rejecting: ${String(error)}`);
          }
          await assert.rejects(promise, unavailable, op);
        }
      });

      it('watchers stop when the store closes', async (t: TestContext) => {
        const seen: LifecycleEvent[] = [];
        store.watch((events) => seen.push(...events), { pollMs: WATCH_POLL_MS });
        await store.appendEvent(eventFor(credentialKey(1), 'reconnect'));
        await store.close();
        await sleep(3 * WATCH_POLL_MS);
        const count = seen.length;
        if (subject.reopen === undefined) return;
        const other = await subject.reopen();
        await other.appendEvent(eventFor(credentialKey(1), 'reconnect'));
        await sleep(4 * WATCH_POLL_MS);
        assert.equal(seen.length, count, 'a closed store delivers nothing more');
        t.diagnostic(`delivered before close: ${count}`);
      });

      it('data survives close and reopen', async (t: TestContext) => {
        if (subject.reopen === undefined) {
          t.skip(`${name} keeps nothing across instances`);
          return;
        }
        const key = credentialKey(1);
        await create(key);
        const record = credentialRecord(key);
        await store.writeCredential(record, { expectedGeneration: 1 }, eventFor(key, 'refreshed'));
        const status: CredentialStatus = { state: 'retrying', failures: 2, nextAttemptAt: 77 };
        await store.updateStatus(key, status);
        const registration: Registration = {
          issuer: key.issuer,
          clientId: 'c',
          clientSecret: secret('cs'),
          tokenEndpointAuthMethod: 'client_secret_basic',
          method: 'dynamic',
          registeredAt: 1,
        };
        await store.putRegistration(registration);
        const discovery: DiscoveryRecord = {
          kind: 'protected-resource',
          id: key.server,
          document: { resource: key.server },
          sourceUrl: `${key.server}/.well-known`,
          fetchedAt: 3,
        };
        await store.putDiscovery(discovery);
        const lease = await store.acquireLease(credentialKey(2), holderA, 60_000);
        const events = await store.readEvents();
        const credential = await store.getCredential(key);
        await store.close();

        const reopened = await subject.reopen();
        assert.deepEqual(await reopened.getCredential(key), credential);
        assert.deepEqual(written((await reopened.getCredential(key))!), record);
        assert.deepEqual((await reopened.getCredential(key))?.status, status);
        assert.deepEqual(await reopened.getRegistration(key.issuer), registration);
        assert.deepEqual(await reopened.getDiscovery('protected-resource', key.server), discovery);
        assert.deepEqual(await reopened.getLease(credentialKey(2)), lease);
        assert.equal(await reopened.acquireLease(credentialKey(2), holderB, 1000), undefined);
        assert.deepEqual(await reopened.readEvents(), events);
        assert.equal(await reopened.lastEventId(), events.at(-1)?.id);
        const next = await reopened.appendEvent(eventFor(key, 'reconnect'));
        assert.ok(next.id > events.at(-1)!.id, 'ids keep increasing');
        assert.deepEqual(
          await reopened.writeCredential(
            credentialRecord(key),
            { expectedGeneration: 2 },
            eventFor(key, 'refreshed'),
          ),
          { ok: true, generation: 3 },
        );
        await reopened.close();
      });
    });
  });
}
