import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { openSqliteStore } from '../../src/store/sqlite.js';
import {
  startLegacySseMcpServer,
  startMcpServer,
  type TestAuthorizationServer,
  type TestLegacySseMcpServer,
  type TestMcpServer,
} from '../harness/index.js';
import { type CliEnv, startCliEnv } from '../support/cli-env.js';
import { loginInto } from '../support/seed-credential.js';
import { latchkey } from '../support/spawn-cli.js';

/** `latchkey tools` and `latchkey call`: the built binary against the real AS and servers. */
describe('latchkey tools and call', () => {
  let cli: CliEnv;
  let as: TestAuthorizationServer;
  let mcp: TestMcpServer;
  let legacy: TestLegacySseMcpServer;
  let modern: TestMcpServer;
  let home: string;
  let env: Record<string, string>;

  async function seed(server: string): Promise<void> {
    const store = await openSqliteStore({ home, env: { ...process.env, ...env } });
    await loginInto(store, as, server, { asUser: 'caller' });
    await store.close();
  }

  before(async () => {
    cli = await startCliEnv({ accessTokenTtl: 2 });
    ({ as, mcp, home, env } = cli);
    legacy = await startLegacySseMcpServer({ authorizationServer: as });
    modern = await startMcpServer({ authorizationServer: as, modernOnly: true, path: '/modern' });
  });
  after(async () => {
    await legacy.close();
    await modern.close();
    await cli.close();
  });

  it('without a credential: exit 4, nothing on stdout, and the login command', async () => {
    const run = await latchkey(['call', mcp.url, 'echo', '{"text":"x"}'], env);
    assert.equal(run.code, 4);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, new RegExp(`latchkey login ${escape(mcp.url)}`));
    assert.equal(as.counters.count('authorization'), 0, 'never starts a login');
  });

  it('lists the tools, as a table and as JSON', async () => {
    await seed(mcp.url);
    const table = await latchkey(['tools', mcp.url], env);
    assert.equal(table.code, 0, table.stderr);
    assert.deepEqual(toolNames(table.stdout), ['echo', 'whoami']);
    const json = await latchkey(['tools', mcp.url, '--json'], env);
    const parsed = JSON.parse(json.stdout) as { tools: { name: string; inputSchema: unknown }[] };
    assert.deepEqual(parsed.tools.map((t) => t.name).sort(), ['echo', 'whoami']);
    assert.ok(parsed.tools.every((t) => typeof t.inputSchema === 'object'));
  });

  it('calls a tool after the access token expired: stdout holds the text only, refreshed silently', async () => {
    await new Promise((r) => setTimeout(r, 1_500));
    const refreshes = as.counters.count('refresh_token', 'ok');
    const run = await latchkey(['call', mcp.url, 'echo', '{"text":"hello there"}'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'hello there\n');
    assert.equal(as.counters.count('refresh_token', 'ok'), refreshes + 1);
    const who = await latchkey(['call', mcp.url, 'whoami'], env);
    assert.equal(who.stdout, 'caller\n');
  });

  it('reads the arguments from stdin with -, and prints the whole result with --json', async () => {
    const run = await latchkey(['call', mcp.url, 'echo', '-', '--json'], env, undefined, '{"text":"piped"}');
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), { content: [{ type: 'text', text: 'piped' }] });
  });

  it('exit 2 for arguments that are not a JSON object, naming the server', async () => {
    for (const bad of ['[1]', '{text:']) {
      const run = await latchkey(['call', mcp.url, 'echo', bad], env);
      assert.equal(run.code, 2);
      assert.match(run.stderr, new RegExp(`${escape(mcp.url)}: the arguments`));
      assert.equal(run.stdout, '');
    }
  });

  it('exit 1 for an unknown tool', async () => {
    const run = await latchkey(['call', mcp.url, 'no-such-tool'], env);
    assert.equal(run.code, 1);
    assert.match(run.stdout + run.stderr, /no-such-tool/);
  });

  it('falls back to the legacy HTTP+SSE transport', async () => {
    await seed(legacy.url);
    const run = await latchkey(['call', legacy.url, 'echo', '{"text":"over sse"}'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'over sse\n');
    const forced = await latchkey(['call', mcp.url, 'echo', '{"text":"x"}', '--transport', 'sse'], env);
    assert.equal(forced.code, 1, 'a Streamable-HTTP-only server refuses --transport sse');
  });

  it('a server that speaks only 2026-07-28: tools and call work through the bridge', async () => {
    await seed(modern.url);
    const list = await latchkey(['tools', modern.url], env);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      toolNames(list.stdout),
      ['echo', 'whoami', 'route'],
      'the tool with an invalid x-mcp-header is left out',
    );
    const run = await latchkey(['call', modern.url, 'route', '{"region":"Genève","shard":4}'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'region=Genève shard=4\n');
    // `call` lists no tools first: the first try lacks Mcp-Param-Region, the server refuses it,
    // and the connection reads tools/list and sends the call again.
    assert.equal(modern.counters.count('modern', 'header-mismatch'), 1);
    assert.equal(modern.counters.count('modern-tool-run', 'route'), 1);
    assert.equal(modern.sessionCount, 0);
  });

  it('an unreachable server: exit 1, naming that server and the cause', async () => {
    const dead = 'http://127.0.0.1:9/mcp';
    const run = await latchkey(['tools', dead], env);
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`${escape(dead)}: `));
    assert.ok(!run.stderr.includes(mcp.url), 'no other server in the message');
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The first column of `latchkey tools`' table. */
function toolNames(stdout: string): Array<string | undefined> {
  return stdout
    .trimEnd()
    .split('\n')
    .map((line) => line.split(/\s+/)[0]);
}
