import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { events } from '../../src/cli/commands/events.js';
import { main } from '../../src/cli/main.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { captureIO } from '../support/cli-io.js';
import { seedCredential } from '../support/seed-credential.js';

describe('cli', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  const server = 'https://mcp.example.com/mcp';
  const accessToken = randomBytes(24).toString('hex');

  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'latchkey-cli-'));
    env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
    await seedCredential(env, server, accessToken);
  });
  after(() => rm(home, { recursive: true, force: true }));

  it('token prints the stored token on stdout only', async () => {
    const io = captureIO(env);
    assert.equal(await main(['token', server], io), ExitCode.OK);
    assert.equal(io.stdout, `${accessToken}\n`);
    assert.equal(io.stderr, '');
  });

  it('token for an unknown server exits LOGIN_REQUIRED, names the server and the next step', async () => {
    const other = 'https://other.example.com/mcp';
    const io = captureIO(env);
    assert.equal(await main(['token', other], io), ExitCode.LOGIN_REQUIRED);
    assert.equal(io.stdout, '');
    assert.match(io.stderr, /other\.example\.com\/mcp/);
    assert.match(io.stderr, /latchkey login https:\/\/other\.example\.com\/mcp/);
    assert.doesNotMatch(io.stderr, /mcp\.example\.com/, 'no other server is mentioned');
  });

  it('status lists credentials without printing any token', async () => {
    const io = captureIO(env);
    assert.equal(await main(['status'], io), ExitCode.OK);
    const [header, row] = io.stdout
      .split('\n')
      .filter((l) => l.startsWith('SERVER') || l.startsWith('https://'));
    assert.match(header ?? '', /^SERVER +ACCOUNT +STATE +EXPIRES +REFRESH$/);
    // No ID token and an opaque access token: nothing names the account, so "-".
    assert.match(row ?? '', /^https:\/\/mcp\.example\.com\/mcp +- +valid +in (59|60) min +no$/);
    const detail = captureIO(env);
    assert.equal(await main(['status', server], detail), ExitCode.OK);
    assert.match(detail.stdout, /^ {2}issuer +https:\/\/as\.example\.com$/m);
    assert.match(detail.stdout, /^ {2}access token +expires in (59|60) min$/m);
    assert.match(detail.stdout, /^ {2}refresh token +none$/m);
    assert.match(detail.stdout, /^ {2}last refresh +never$/m);
    assert.ok(!detail.stdout.includes(accessToken));
    assert.ok(!io.stdout.includes(accessToken) && !io.stderr.includes(accessToken));
    const json = captureIO(env);
    assert.equal(await main(['status', '--json'], json), ExitCode.OK);
    const parsed = JSON.parse(json.stdout) as { credentials: { server: string; state: string }[] };
    assert.deepEqual(
      parsed.credentials.map((c) => [c.server, c.state]),
      [[server, 'valid']],
    );
    assert.ok(!json.stdout.includes(accessToken));
  });

  it('a bad URL and an unknown command are usage errors', async () => {
    const bad = captureIO(env);
    assert.equal(await main(['token', 'not a url'], bad), ExitCode.USAGE);
    assert.match(bad.stderr, /not a valid server URL/);
    const neither = captureIO(env);
    assert.equal(await main(['logout'], neither), ExitCode.USAGE);
    assert.match(neither.stderr, /--all/);
    const unknown = captureIO(env);
    assert.equal(await main(['frobnicate'], unknown), ExitCode.USAGE);
  });

  it('events lists the lifecycle log, filtered by server, as text or JSON lines', async () => {
    const io = captureIO(env);
    assert.equal(await main(['events'], io), ExitCode.OK);
    assert.match(io.stdout, /acquired\s+https:\/\/mcp\.example\.com\/mcp\s+subject=local gen=1/);
    assert.ok(!io.stdout.includes(accessToken));
    const json = captureIO(env);
    assert.equal(await main(['events', server, '--json'], json), ExitCode.OK);
    const parsed = json.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; server: string });
    assert.deepEqual(
      parsed.map((e) => [e.type, e.server]),
      [['acquired', server]],
    );
    const none = captureIO(env);
    assert.equal(await main(['events', 'https://other.example.com/mcp'], none), ExitCode.OK);
    assert.equal(none.stdout, '');
  });

  it('events --follow prints events as other writers append them', async () => {
    const store = await openSqliteStore({ env });
    const io = captureIO(env);
    let stop!: () => void;
    const until = new Promise<void>((resolve) => (stop = resolve));
    const following = events(store, io, { json: true, follow: true, limit: 0, until });
    const writer = await openSqliteStore({ env });
    await writer.appendEvent({
      type: 'reconnect',
      server,
      issuer: 'https://as.example.com',
      subject: 'local',
    });
    const deadline = Date.now() + 3000;
    while (!io.stdout.includes('reconnect') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    stop();
    await following;
    await writer.close();
    await store.close();
    assert.match(io.stdout, /"type":"reconnect"/);
  });
});

describe('cli help', () => {
  const commands = ['status', 'doctor', 'events', 'token', 'login', 'logout', 'reset', 'demo', 'proxy'];
  const more = ['tools', 'call', 'reconnect'];

  it('every command, and the root, documents itself with examples; help exits 0 on stdout', async () => {
    const root = captureIO({});
    assert.equal(await main(['--help'], root), ExitCode.OK);
    for (const name of [...commands, ...more]) {
      assert.match(root.stdout, new RegExp(`\\n  ${name} `), `${name} listed in the root help`);
      const io = captureIO({});
      assert.equal(await main([name, '--help'], io), ExitCode.OK, name);
      assert.match(io.stdout, /Examples?:\n {2}latchkey /, `${name} --help has an example`);
      assert.equal(io.stderr, '');
    }
    assert.match(root.stdout, /Examples:\n {2}latchkey demo/);
    assert.match(root.stdout, /Exit codes: 0 ok, 1 error, 2 usage, 4 login required, 5 cancelled\./);
    assert.doesNotMatch(root.stdout + (await helpOf('proxy')), /login-agent/, 'internal flags stay hidden');
  });
});

async function helpOf(command: string): Promise<string> {
  const io = captureIO({});
  await main([command, '--help'], io);
  return io.stdout;
}
