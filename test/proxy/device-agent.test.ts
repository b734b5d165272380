import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  cancelDeviceLogin,
  devicePromptEvent,
  pendingPrompt,
  serversAwaitingDeviceLogin,
} from '../../src/proxy/device-agent.js';
import { EventType } from '../../src/store/contract.js';
import { createMemoryStore } from '../../src/store/memory.js';

const SERVER = 'https://mcp.example.com/mcp';
const OTHER = 'https://other.example.com/mcp';
const prompt = () => ({
  verificationUri: 'https://as.example.com/device',
  userCode: 'ABCD-EFGH',
  expiresAt: Date.now() + 600_000,
});

describe('device agent bookkeeping', () => {
  it('finds a pending prompt behind a long event history', async () => {
    const store = createMemoryStore();
    // Older than any page a reader starting from the oldest event would see.
    for (let i = 0; i < 400; i++) {
      await store.appendEvent({ type: EventType.REFRESHED, server: SERVER, issuer: 'i', subject: 's' });
    }
    // This process stands in for the agent: it is alive.
    await store.appendEvent(devicePromptEvent(SERVER, 'local', prompt()));
    const pending = await pendingPrompt(store, SERVER);
    assert.equal(pending?.prompt.userCode, 'ABCD-EFGH');
    assert.equal(pending?.pid, process.pid);
    assert.deepEqual(await serversAwaitingDeviceLogin(store), [SERVER]);
    assert.equal(await pendingPrompt(store, OTHER), undefined, 'another server has none');
  });

  it('a logout cancels it: a logout event is appended when no credential was deleted', async () => {
    const store = createMemoryStore();
    await store.appendEvent(devicePromptEvent(SERVER, 'local', prompt()));
    const pending = await pendingPrompt(store, SERVER);
    const cancelled = await cancelDeviceLogin(store, SERVER, 'local', pending, false);
    assert.equal(cancelled?.userCode, 'ABCD-EFGH');
    const last = (await store.readEvents({ server: SERVER })).at(-1);
    assert.equal(last?.type, EventType.DELETED);
    assert.equal(await pendingPrompt(store, SERVER), undefined, 'the prompt is stale after the logout');
    assert.deepEqual(await serversAwaitingDeviceLogin(store), []);
  });

  it('a logout that deleted a credential appends nothing more', async () => {
    const store = createMemoryStore();
    await store.appendEvent(devicePromptEvent(SERVER, 'local', prompt()));
    const before = await store.lastEventId();
    const pending = await pendingPrompt(store, SERVER);
    assert.ok(await cancelDeviceLogin(store, SERVER, 'local', pending, true));
    assert.equal(await store.lastEventId(), before);
  });
});
