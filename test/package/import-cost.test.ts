// `import 'latchkey'` must not load the heavy dependencies (issue 15, point 5): an embedder
// with its own store, or none of the MCP parts, must not pay for better-sqlite3's native
// module, the MCP SDK (and its zod and ajv) or oidc-provider. Each case runs a fresh node
// process on dist/ (build first) that records every module it resolves.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'latchkey-import-cost-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const HEAVY = {
  'better-sqlite3': '/node_modules/better-sqlite3/',
  pg: '/node_modules/pg/',
  'the MCP SDK': '/node_modules/@modelcontextprotocol/sdk/',
  'oidc-provider': '/node_modules/oidc-provider/',
} as const;
type Heavy = keyof typeof HEAVY;

let runs = 0;
/** The module URLs a fresh process resolved while importing `entry` (and doing `action`). */
async function resolvedBy(entry: string, action?: string): Promise<string[]> {
  const log = join(scratch, `resolved-${++runs}.txt`);
  await run(
    process.execPath,
    [
      '--import',
      join(fixtures, 'record-resolutions.mjs'),
      join(fixtures, 'import-entry.mjs'),
      entry,
      ...(action === undefined ? [] : [action]),
    ],
    { cwd: root, env: { ...process.env, LATCHKEY_RESOLVE_LOG: log } },
  );
  return readFileSync(log, 'utf8').split('\n').filter(Boolean);
}

function loaded(urls: readonly string[], heavy: Heavy): string[] {
  return urls.filter((url) => url.includes(HEAVY[heavy]));
}

describe('what importing latchkey loads', () => {
  test('dist/ is built', () => {
    assert.ok(existsSync(join(root, 'dist/index.js')), 'run `npm run build` before this test');
  });

  test("import 'latchkey' loads none of better-sqlite3, pg, the MCP SDK, oidc-provider", async () => {
    const urls = await resolvedBy('latchkey');
    const main = `file://${join(root, 'dist/index.js')}`;
    assert.ok(urls.includes(main), `the self-reference resolves to dist/index.js (got ${urls.length} URLs)`);
    for (const heavy of Object.keys(HEAVY) as Heavy[]) {
      assert.deepEqual(loaded(urls, heavy), [], `import 'latchkey' loaded ${heavy}`);
    }
  });

  // The recorder must see these, or the test above proves nothing.
  test("the recorder sees them: 'latchkey/sqlite' loads better-sqlite3, 'latchkey/mcp' the SDK", async () => {
    assert.notDeepEqual(loaded(await resolvedBy('latchkey/sqlite'), 'better-sqlite3'), []);
    assert.notDeepEqual(loaded(await resolvedBy('latchkey/mcp'), 'the MCP SDK'), []);
    assert.notDeepEqual(loaded(await resolvedBy('latchkey/postgres'), 'pg'), []);
  });

  test('the main entry loads better-sqlite3 when a SQLite store is first opened', async () => {
    const urls = await resolvedBy('latchkey', 'open-sqlite');
    assert.notDeepEqual(loaded(urls, 'better-sqlite3'), []);
    assert.deepEqual(loaded(urls, 'the MCP SDK'), []);
    assert.deepEqual(loaded(urls, 'pg'), [], 'a SQLite store never loads pg');
  });

  test("'latchkey/proxy' does not load oidc-provider (only `latchkey demo` does)", async () => {
    assert.deepEqual(loaded(await resolvedBy('latchkey/proxy'), 'oidc-provider'), []);
  });
});
