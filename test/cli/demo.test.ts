import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const BIN = fileURLToPath(new URL('../../bin/latchkey.cjs', import.meta.url));

describe('latchkey demo', () => {
  it('walks through every step on its own and leaves nothing behind', async () => {
    const child = spawn(process.execPath, [BIN, 'demo', '--auto', '--token-seconds', '2'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, stderr);
    assert.equal(stdout, '', 'the tour is for humans: stderr only');
    for (const step of [
      '[1/5] Log in',
      '[2/5] Call a tool',
      '[3/5] Let the access token expire',
      '[4/5] latchkey status',
      '[5/5] Log out',
    ]) {
      assert.ok(stderr.includes(step), `missing step ${step}`);
    }
    assert.match(stderr, /whoami -> "demo-user"/);
    const refreshes = Number(/no login needed; the AS saw (\d+) refresh request/.exec(stderr)?.[1]);
    assert.ok(refreshes >= 1, 'the expired token was refreshed');
    assert.match(stderr, /generation 1 -> [2-9]/);
    assert.match(stderr, /SERVER +ACCOUNT +STATE/);
    assert.match(stderr, /revoked at the AS \(RFC 7009\): refresh token and access token; deleted locally/);
    assert.match(stderr, /the access token is inactive/);
    assert.match(stderr, /\nDone\./);
    const store = /store +(\S+)/.exec(stderr)?.[1];
    assert.ok(store !== undefined);
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(store), false, 'the throw-away store is deleted');
  });
});
