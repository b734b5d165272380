import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { CredentialKey } from '../../src/credential/key.js';
import type { CredentialManager } from '../../src/lifecycle/manager.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { obtainTokens } from '../harness/index.js';
import { type LifecycleEnv, lifecycleEnv, sleep } from '../support/lifecycle-env.js';

/** Log `subject` in through the AS's real pages and store the tokens under that subject. */
async function loginAs(
  env: LifecycleEnv,
  manager: CredentialManager,
  subject: string,
): Promise<CredentialKey> {
  const tokens = await obtainTokens(env.as, { resource: env.server, subject });
  const saved = await manager.saveAcquired(env.server, {
    issuer: tokens.issuer,
    clientId: tokens.clientId,
    requestedAt: tokens.requestedAt,
    response: tokens.response,
    subject,
  });
  return { server: saved.server, issuer: saved.issuer, subject };
}

async function generation(store: CredentialStore, key: CredentialKey): Promise<number | undefined> {
  return (await store.getCredential(key))?.generation;
}

describe('the manager cache is bounded (maxCachedCredentials)', () => {
  let env: LifecycleEnv;
  before(async () => {
    // Long-lived tokens: nothing here may expire while the test runs on a busy machine.
    env = await lifecycleEnv({ accessTokenTtl: 600 });
  });
  after(() => env.close());

  it('keeps the recently used, reads an evicted credential from the store, deletes nothing', async () => {
    const store = await env.openStore();
    const writer = env.manager(store, { watch: false, proactiveRefresh: false });
    const [a, b, c, d] = [
      await loginAs(env, writer, 'a'),
      await loginAs(env, writer, 'b'),
      await loginAs(env, writer, 'c'),
      await loginAs(env, writer, 'd'),
    ];
    assert.ok(a && b && c && d);
    // No watch: a cached entry is only replaced by this manager's own calls, so what a call
    // returns after the store changed behind its back shows whether it was cached.
    const manager = env.manager(store, { maxCachedCredentials: 2, watch: false, proactiveRefresh: false });
    const first = new Map<string, string>();
    for (const key of [a, b, c]) first.set(key.subject, await manager.getAccessToken(env.server, key));
    assert.deepEqual(manager.cacheSize.cached, 2);
    assert.equal(manager.stats.cacheEvictions, 1);
    await manager.getAccessToken(env.server, { subject: 'b' }); // b is used again; c is not
    await manager.getAccessToken(env.server, { subject: 'd' });
    assert.equal(manager.stats.cacheEvictions, 2);

    // Replace every stored token behind the manager's back.
    const replaced = new Map<string, string>();
    for (const key of [a, b, c]) {
      const cred = await store.getCredential(key);
      assert.ok(cred);
      const accessToken = `replaced-${key.subject}-${'x'.repeat(24)}`;
      const { generation: _g, status: _s, updatedAt: _u, ...record } = cred;
      const result = await store.writeCredential(
        { ...record, secrets: { ...cred.secrets, accessToken } },
        { expectedGeneration: cred.generation },
        { type: 'acquired', server: key.server, issuer: key.issuer, subject: key.subject },
      );
      assert.ok(result.ok);
      replaced.set(key.subject, accessToken);
    }
    // b was kept (recently used): still its first token. a and c were evicted: read again.
    assert.equal(await manager.getAccessToken(env.server, { subject: 'b' }), first.get('b'));
    assert.equal(await manager.getAccessToken(env.server, { subject: 'a' }), replaced.get('a'));
    assert.equal(await manager.getAccessToken(env.server, { subject: 'c' }), replaced.get('c'));
    assert.equal((await store.listCredentials({ server: env.server })).length, 4, 'nothing deleted');
    assert.ok(manager.cacheSize.cached <= 2);
  });
});

describe('an evicted credential leaves the proactive schedule', () => {
  let env: LifecycleEnv;
  before(async () => {
    env = await lifecycleEnv({ accessTokenTtl: 4, rotateRefreshToken: true });
  });
  after(() => env.close());

  it('an evicted credential is not refreshed in the background; its next call refreshes it', async () => {
    const store = await env.openStore();
    const writer = env.manager(store, { watch: false, proactiveRefresh: false });
    const alice = await loginAs(env, writer, 'alice');
    const bob = await loginAs(env, writer, 'bob');
    const carol = await loginAs(env, writer, 'carol');
    const aliceObtained = (await store.getCredential(alice))?.obtainedAt ?? 0;
    const refreshesBefore = env.as.counters.count('refresh_token', 'ok');
    const manager = env.manager(store, { maxCachedCredentials: 2, watch: false });
    for (const key of [alice, bob, carol]) await manager.getAccessToken(env.server, key);
    assert.deepEqual(manager.cacheSize, { cached: 2, scheduled: 2 }, 'alice evicted and unscheduled');

    // bob and carol are refreshed ahead of expiry (4-s tokens: at about 2.7 s) ...
    for (let i = 0; i < 200; i++) {
      if ((await generation(store, bob)) === 2 && (await generation(store, carol)) === 2) break;
      await sleep(50);
    }
    assert.equal(await generation(store, bob), 2);
    assert.equal(await generation(store, carol), 2);
    // ... and alice, whose proactive point (obtained first) has passed too, is not.
    while (Date.now() < aliceObtained + 3_200) await sleep(50);
    assert.equal(await generation(store, alice), 1, 'the evicted credential was refreshed');
    assert.equal(env.as.counters.count('refresh_token', 'ok') - refreshesBefore, 2);
    assert.equal(manager.stats.refreshRequests, 2);

    // Her next call reads the store and refreshes on demand (the token is about to expire).
    while (Date.now() < aliceObtained + 3_700) await sleep(50);
    const token = await manager.getToken(env.server, { subject: 'alice' });
    assert.equal(token.generation, 2);
    assert.ok((await env.as.introspect(token.token)).active);
    assert.equal(env.as.counters.count('refresh_token', 'invalid_grant'), 0);
  });
});
