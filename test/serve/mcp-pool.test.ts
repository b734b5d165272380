// The gateway's upstream links are bounded and closed when idle. Real SQLite store and
// CredentialManager; the links never reach a server (a link connects on its first request).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';

import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { LinkPool } from '../../src/serve/mcp-pool.js';
import type { CredentialStore } from '../../src/store/contract.js';
import { openSqliteStore } from '../../src/store/sqlite.js';

describe('serve: the MCP link pool', () => {
  let home: string;
  let store: CredentialStore;
  let manager: CredentialManager;

  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'latchkey-pool-'));
    store = await openSqliteStore({ home, env: { LATCHKEY_KEY: randomBytes(32).toString('base64') } });
    manager = new CredentialManager({ store, logger: silentLogger });
  });

  after(async () => {
    manager.close();
    await store.close();
    await rm(home, { recursive: true, force: true });
  });

  it('keeps one link per (subject, upstream) and at most maxLinks, closing the least recently used', async () => {
    const pool = new LinkPool({ manager, logger: silentLogger, maxLinks: 2 });
    try {
      const a = pool.link('a', 'https://mcp.example.com/mcp');
      assert.equal(pool.link('a', 'https://mcp.example.com/mcp'), a, 'the same link again');
      const b = pool.link('b', 'https://mcp.example.com/mcp');
      pool.link('a', 'https://mcp.example.com/mcp'); // a is now the most recently used
      pool.link('c', 'https://mcp.example.com/mcp');
      assert.equal(pool.size, 2);
      assert.equal(pool.link('a', 'https://mcp.example.com/mcp'), a, 'a stayed');
      assert.notEqual(pool.link('b', 'https://mcp.example.com/mcp'), b, 'b was closed and is made anew');
    } finally {
      await pool.close();
    }
  });

  it('a link with a listener (an open GET stream) is never evicted; idle ones are', async () => {
    const pool = new LinkPool({ manager, logger: silentLogger, idleMs: 50 });
    try {
      const held = pool.link('held', 'https://mcp.example.com/mcp');
      held.listeners.add(() => undefined);
      pool.link('idle', 'https://mcp.example.com/mcp');
      assert.equal(pool.size, 2);
      await sleep(300);
      assert.equal(pool.size, 1);
      assert.equal(pool.link('held', 'https://mcp.example.com/mcp'), held);
    } finally {
      await pool.close();
    }
  });
});
