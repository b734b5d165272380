import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SecretRegistry } from '../src/redact.js';
import { SecretIndex, secretOf } from '../src/secret-index.js';

describe('secret index', () => {
  it('finds every record through growth, shrinking and shared tails, and forgets deleted ones', () => {
    const index = new SecretIndex();
    // Two families: distinct tails, and (every 10th) the same tail as many others.
    const secret = (n: number): string => (n % 10 === 0 ? `shared-${n}-same-tail` : `token-${n}-${n * 7919}`);
    for (let n = 0; n < 5000; n++) index.set(secret(n));
    assert.equal(index.size, 5000);
    index.set({ secret: secret(10), pins: 2, recent: true }); // replaces, does not add
    assert.equal(index.size, 5000);
    assert.deepEqual(index.get(secret(10)), { secret: secret(10), pins: 2, recent: true });
    for (let n = 0; n < 5000; n++) assert.equal(secretOf(index.get(secret(n)) ?? ''), secret(n));
    for (let n = 0; n < 4990; n++) index.delete(secret(n));
    assert.equal(index.size, 10);
    for (let n = 0; n < 4990; n++) assert.equal(index.get(secret(n)), undefined);
    for (let n = 4990; n < 5000; n++) assert.equal(index.get(secret(n)), secret(n));
    index.delete('never-held-secret');
    assert.equal(index.size, 10);
  });

  it('a registry pinning and releasing 20k tokens ends up holding only its recent limit', () => {
    const registry = new SecretRegistry(100);
    const tokens = Array.from({ length: 20_000 }, (_, n) => `access-token-${'z'.repeat(30)}-${n}`);
    for (const token of tokens) registry.pin(token);
    assert.equal(registry.size, 20_000);
    assert.ok(!registry.scrub(`a ${tokens[12_345]} b`).includes(tokens[12_345] ?? ''));
    for (const token of tokens) registry.unpin(token);
    assert.equal(registry.size, 100);
    assert.equal(registry.scrub(tokens[0] ?? ''), tokens[0]);
    assert.ok(!registry.scrub(tokens[19_999] ?? '').includes(tokens[19_999] ?? ''));
  });
});
