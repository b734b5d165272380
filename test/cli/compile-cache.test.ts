// bin/compile-cache.cjs: the CLI bundle is loaded with a V8 code cache in the user's cache
// directory. The cache is written once per build and command, kept private, used again as
// it is, survives damage by being rebuilt, holds no argument the command was given, and can
// be turned off.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { latchkey } from '../support/spawn-cli.js';

describe('the CLI’s compile cache', () => {
  const root = mkdtempSync(join(tmpdir(), 'latchkey-compile-cache-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const home = (): { env: Record<string, string>; cache: string } => {
    const dir = join(root, `h${n++}`);
    return {
      env: { HOME: dir, XDG_CACHE_HOME: join(dir, 'cache'), LATCHKEY_HOME: join(dir, 'lk') },
      cache: join(dir, 'cache', 'latchkey'),
    };
  };
  const files = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.bin'));

  it('is written on the first start, private, one per command, and used again as it is', async () => {
    const { env, cache } = home();
    const first = await latchkey(['status'], env);
    assert.equal(first.code, 0, first.stderr);
    const [name] = files(cache);
    assert.match(name ?? '', /^v8-v\d+\.\d+\.\d+-\w+-\d+-\d+-status\.bin$/);
    assert.equal(statSync(cache).mode & 0o777, 0o700);
    const file = join(cache, name!);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const written = statSync(file);
    assert.ok(written.size > 10_000, `a cache of ${written.size} bytes`);

    const second = await latchkey(['status'], env);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, first.stdout);
    const again = statSync(file);
    // V8 accepted the cache, so it was not written again.
    assert.equal(again.ino, written.ino);
    assert.equal(again.mtimeMs, written.mtimeMs);

    assert.equal((await latchkey(['--version'], env)).code, 0);
    assert.deepEqual(files(cache).sort(), [name!, name!.replace('-status.bin', '-other.bin')].sort());
  });

  it('a damaged cache is rejected and rebuilt; the command runs as usual', async () => {
    const { env, cache } = home();
    await latchkey(['status'], env);
    const [name] = files(cache);
    const file = join(cache, name!);
    const garbage = Buffer.alloc(statSync(file).size, 0x5a);
    writeFileSync(file, garbage);
    const run = await latchkey(['status'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /no credentials yet/);
    assert.notDeepEqual(readFileSync(file), garbage, 'the cache was written again');
  });

  it('holds no argument of the command', async () => {
    const { env, cache } = home();
    const marker = 'cache-marker-7f3a9c';
    await latchkey(['status', `https://${marker}.example/mcp`], env);
    for (const name of files(cache)) assert.ok(!readFileSync(join(cache, name)).includes(marker));
    assert.equal(files(cache).length, 1);
  });

  it('finds the command past the global --store, and leaves the demo uncached', async () => {
    const { env, cache } = home();
    // The demo imports oidc-provider, which a script run from a code cache cannot on Node 20.
    assert.equal((await latchkey(['--store', join(cache, '..', 'x.db'), 'demo', '--help'], env)).code, 0);
    assert.throws(() => readdirSync(cache), { code: 'ENOENT' });
    const run = await latchkey(['--store', join(cache, '..', 'x.db'), 'status'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(
      files(cache).map((f) => f.replace(/^.*-/, '')),
      ['status.bin'],
    );
  });

  it('LATCHKEY_NO_COMPILE_CACHE=1 writes nothing', async () => {
    const { env, cache } = home();
    const run = await latchkey(['status'], { ...env, LATCHKEY_NO_COMPILE_CACHE: '1' });
    assert.equal(run.code, 0, run.stderr);
    assert.throws(() => readdirSync(cache), { code: 'ENOENT' });
  });
});
