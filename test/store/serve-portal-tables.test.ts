// The portal's tables (single-use links, sessions) on both stores that have them: one suite,
// run against real SQLite and real PostgreSQL, each with two store objects on the same data
// (two instances).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

import type { PortalGrant } from '../../src/store/serve-contract.js';
import { type OpenInstances, SERVE_STORES } from './serve-instances.js';

function grant(overrides: Partial<PortalGrant> = {}): PortalGrant {
  const now = Date.now();
  return {
    id: randomBytes(32).toString('hex'),
    subject: 'alice',
    createdAt: now,
    expiresAt: now + 300_000,
    ...overrides,
  };
}

function portalContract(name: string, open: OpenInstances): void {
  describe(`portal tables: ${name}`, () => {
    it('a link is taken once only, by any instance, and concurrent takes have one winner', async (t) => {
      const { store, other } = await open(t);
      const link = grant();
      await store.addPortalLink(link);
      assert.deepEqual(await other.takePortalLink(link.id), link, 'another instance takes it');
      assert.equal(await store.takePortalLink(link.id), undefined, 'single use');
      const raced = grant({ subject: 'bob' });
      await store.addPortalLink(raced);
      const results = await Promise.all([
        store.takePortalLink(raced.id),
        other.takePortalLink(raced.id),
        store.takePortalLink(raced.id),
        other.takePortalLink(raced.id),
      ]);
      assert.deepEqual(
        results.filter((r) => r !== undefined),
        [raced],
      );
    });

    it('an expired link is refused and deleted', async (t) => {
      const { store } = await open(t);
      const now = Date.now();
      const old = grant({ createdAt: now - 400_000, expiresAt: now - 100_000 });
      await store.addPortalLink(old);
      assert.equal(await store.takePortalLink(old.id), undefined);
      const live = grant();
      await store.addPortalLink(live);
      assert.equal(await store.takePortalLink(live.id, live.expiresAt), undefined, 'gone at its expiry');
      assert.equal(await store.takePortalLink(live.id), undefined, 'and deleted by that take');
    });

    it('a session is read by every instance until it expires or is deleted', async (t) => {
      const { store, other } = await open(t);
      const session = grant({ expiresAt: Date.now() + 3_600_000 });
      await store.addPortalSession(session);
      assert.deepEqual(await other.getPortalSession(session.id), session);
      assert.deepEqual(await store.getPortalSession(session.id), session, 'reading does not use it up');
      assert.equal(await store.getPortalSession(session.id, session.expiresAt), undefined, 'expired');
      assert.equal(await store.getPortalSession(randomBytes(32).toString('hex')), undefined);
      assert.equal(await other.deletePortalSession(session.id), true);
      assert.equal(await store.getPortalSession(session.id), undefined, 'signed out on every instance');
      assert.equal(await store.deletePortalSession(session.id), false);
    });

    it('adding a session sweeps expired ones', async (t) => {
      const { store } = await open(t);
      const now = Date.now();
      const stale = grant({ createdAt: now - 7_200_000, expiresAt: now - 1 });
      await store.addPortalSession(stale);
      await store.addPortalSession(grant());
      assert.equal(await store.getPortalSession(stale.id, 0), undefined, 'swept, not merely expired');
    });
  });
}

for (const { name, open } of SERVE_STORES) portalContract(name, open);
