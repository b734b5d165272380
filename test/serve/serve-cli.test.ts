// `latchkey serve` from the CLI, in-process: app keys (printed once, stored as a digest only),
// the config file and --upstream flags, and the service answering with a key made by the CLI.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { runServe } from '../../src/cli/commands/serve.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import {
  mergeUpstreams,
  parseListen,
  parsePortalSignInUrl,
  parsePublicUrl,
  parseReturnToOrigin,
  parseUpstreamFlag,
  readConfigFile,
} from '../../src/serve/config.js';
import { captureIO } from '../support/cli-io.js';

describe('latchkey serve: CLI and configuration', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'latchkey-serve-cli-'));
    env = {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: randomBytes(32).toString('base64'),
      LATCHKEY_LOG_LEVEL: 'silent',
    };
  });
  after(() => rm(home, { recursive: true, force: true }));

  async function createKey(name: string): Promise<string> {
    const io = captureIO(env);
    assert.equal(await main(['serve', 'keys', 'create', '--name', name], io), ExitCode.OK, io.stderr);
    assert.match(io.stdout, /^lk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\n$/, 'stdout is the key alone');
    assert.match(io.stderr, /shown once/);
    return io.stdout.trim();
  }

  /** Run the service until `body` is done; returns what it printed. */
  async function serving(
    args: { upstream?: string[]; config?: string },
    body: (url: string) => Promise<void>,
  ) {
    const io = captureIO(env);
    let stop!: () => void;
    const until = new Promise<void>((resolve) => (stop = resolve));
    const running = runServe(io, {
      upstream: args.upstream ?? [],
      ...(args.config === undefined ? {} : { config: args.config }),
      listen: '127.0.0.1:0',
      refresher: false,
      until,
    });
    let url: string | undefined;
    for (let i = 0; i < 200 && url === undefined; i++) {
      url = /listening on (http:\/\/\S+)/.exec(io.stderr)?.[1];
      if (url === undefined) await new Promise((r) => setTimeout(r, 25));
    }
    try {
      assert.ok(url !== undefined, `serve did not start: ${io.stderr}`);
      await body(url);
    } finally {
      stop();
      await running;
    }
    return io;
  }

  it('keys create prints the key once and stores only its digest; list shows ids and names', async () => {
    const key = await createKey('my portal');
    const files = ['latchkey.db', 'latchkey.db-wal'].map((f) => join(home, f)).filter((f) => existsSync(f));
    const db = files.map((f) => readFileSync(f).toString('latin1')).join('');
    assert.ok(db.includes('my portal'), 'the store files hold the key row');
    assert.ok(!db.includes(key), 'the key is not in the store files');
    // The secret is base64url and may itself hold '_', so cut it by position, not by split.
    const secret = key.slice('lk_'.length + 12 + 1);
    assert.equal(secret.length, 43);
    assert.ok(!db.includes(secret), 'nor its secret part');
    const io = captureIO(env);
    assert.equal(await main(['serve', 'keys', 'list', '--json'], io), ExitCode.OK);
    const listed = JSON.parse(io.stdout) as { id: string; name: string }[];
    assert.ok(listed.some((k) => k.name === 'my portal' && key.startsWith(`lk_${k.id}_`)));
    assert.ok(!io.stdout.includes(key));
  });

  it('serve answers a key made by the CLI; after keys delete it is refused', async () => {
    const key = await createKey('short-lived');
    const id = key.split('_')[1] ?? '';
    await serving({ upstream: ['demo=https://MCP.example.com/mcp'] }, async (url) => {
      const call = () => fetch(`${url}/v1/upstreams`, { headers: { authorization: `Bearer ${key}` } });
      const ok = await call();
      assert.equal(ok.status, 200);
      assert.deepEqual(await ok.json(), {
        upstreams: [{ id: 'demo', url: 'https://mcp.example.com/mcp', scopes: null, client: 'dynamic' }],
      });
      const io = captureIO(env);
      assert.equal(await main(['serve', 'keys', 'delete', id], io), ExitCode.OK, io.stderr);
      assert.equal((await call()).status, 401, 'a deleted key is refused at once, by the running service');
    });
  });

  it('a config file with a pre-registered client whose secret comes from the environment', async () => {
    const path = join(home, 'serve.json');
    writeFileSync(
      path,
      JSON.stringify({
        upstreams: [
          {
            id: 'internal',
            url: 'https://mcp.internal.example/mcp',
            client_id: 'gw',
            client_secret_env: 'GW_SECRET',
            scopes: ['mcp:tools'],
          },
        ],
      }),
    );
    const secret = `s-${randomBytes(16).toString('hex')}`;
    const withSecret = { ...env, GW_SECRET: secret };
    assert.deepEqual(readConfigFile(path, withSecret), [
      {
        id: 'internal',
        url: 'https://mcp.internal.example/mcp',
        clientId: 'gw',
        clientSecret: secret,
        scopes: ['mcp:tools'],
      },
    ]);
    assert.throws(() => readConfigFile(path, env), /GW_SECRET \(client_secret_env\) is not set/);
    const key = await createKey('config');
    const saved = env;
    env = withSecret;
    try {
      await serving({ config: path, upstream: ['demo=https://mcp.example.com/mcp'] }, async (url) => {
        const listed = await fetch(`${url}/v1/upstreams`, { headers: { authorization: `Bearer ${key}` } });
        const body = JSON.stringify(await listed.json());
        assert.match(body, /"id":"internal".*"client":"pre-registered".*"id":"demo"/);
        assert.ok(!body.includes(secret), 'the client secret is never shown');
      });
    } finally {
      env = saved;
    }
  });

  it('configuration errors say what to fix', async () => {
    const path = join(home, 'inline.json');
    writeFileSync(
      path,
      JSON.stringify({
        upstreams: [{ id: 'x', url: 'https://a.example/mcp', client_id: 'c', client_secret: 'oops' }],
      }),
    );
    assert.throws(
      () => readConfigFile(path, env),
      (e: Error) => /unknown fields: client_secret/.test(e.message),
    );
    assert.throws(() => parseUpstreamFlag('nourl'), /is not <id>=<url>/);
    assert.throws(() => parseUpstreamFlag('bad id=https://a.example'), /is not valid/);
    assert.throws(() => parseUpstreamFlag('a=ftp://a.example'), /must be http/);
    assert.throws(
      () =>
        mergeUpstreams(
          [parseUpstreamFlag('a=https://a.example')],
          [parseUpstreamFlag('a=https://b.example')],
        ),
      /configured twice/,
    );
    assert.deepEqual(parseListen('0.0.0.0:9000'), { host: '0.0.0.0', port: 9000 });
    assert.deepEqual(parseListen('[::1]:8787'), { host: '::1', port: 8787 });
    assert.deepEqual(parseListen('8080'), { host: '127.0.0.1', port: 8080 });
    assert.throws(() => parseListen('host:99999'), /not host:port/);
    assert.equal(parsePublicUrl('https://gw.example.com/latchkey/'), 'https://gw.example.com/latchkey');
    assert.throws(() => parsePublicUrl('https://gw.example.com/?x=1'), /without query/);
    assert.equal(parseReturnToOrigin('https://app.example.com'), 'https://app.example.com');
    assert.equal(parseReturnToOrigin('http://127.0.0.1:3000/'), 'http://127.0.0.1:3000');
    assert.throws(() => parseReturnToOrigin('https://app.example.com/settings'), /not an origin/);
    assert.throws(() => parseReturnToOrigin('app.example.com'), /not an origin/);
    assert.equal(parsePortalSignInUrl('https://app.example.com/gw?x=1'), 'https://app.example.com/gw?x=1');
    assert.throws(() => parsePortalSignInUrl('https://u:p@app.example.com/'), /without user/);
    const io = captureIO(env);
    assert.equal(await main(['serve', '--listen', '127.0.0.1:0'], io), ExitCode.USAGE);
    assert.match(io.stderr, /no upstream MCP servers are configured/);
    // A lease of milliseconds would be extended every few milliseconds: refused at the flag.
    for (const command of [['serve', '--upstream', 'a=https://a.example/mcp'], ['refresher']]) {
      const short = captureIO(env);
      assert.equal(await main([...command, '--lease-ttl', '0.5'], short), ExitCode.USAGE);
      assert.match(short.stderr, /--lease-ttl.*at least 1 second/);
    }
  });
});
