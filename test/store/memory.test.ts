import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { createMemoryStore } from '../../src/store/memory.js';
import { storeContract } from './contract.js';

storeContract('memory', async () => {
  const store = createMemoryStore();
  return { store, cleanup: () => store.close() };
});

describe('memory store', () => {
  it('describes itself as keeping no secrets at rest', () => {
    const store = createMemoryStore();
    assert.equal(store.kind, 'memory');
    assert.deepEqual(store.security, { keySource: 'none', insecure: false, location: 'memory' });
  });

  it('two memory stores share nothing', async () => {
    const a = createMemoryStore();
    const b = createMemoryStore();
    const key = { server: 'https://mcp.example.com/mcp', issuer: 'https://as.example.com', subject: 'local' };
    await a.appendEvent({ type: 'reconnect', ...key });
    assert.equal(await a.lastEventId(), 1);
    assert.equal(await b.lastEventId(), 0);
  });
});
