import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { type TestMcpServer } from '../harness/index.js';
import { type CliEnv, startCliEnv } from '../support/cli-env.js';
import { latchkey } from '../support/spawn-cli.js';

const BROWSER = fileURLToPath(new URL('../fixtures/env-dumping-browser.ts', import.meta.url));

describe('the program BROWSER names gets no latchkey secret (issue 14, point 6)', () => {
  let cli: CliEnv;
  let mcp: TestMcpServer;
  let home: string;
  before(async () => {
    cli = await startCliEnv({ accessTokenTtl: 300 });
    ({ mcp, home } = cli);
  });
  after(async () => {
    await cli.close();
  });

  it('LATCHKEY_KEY, LATCHKEY_CLIENT_SECRET and every other LATCHKEY_* are removed; the rest is kept', async () => {
    const key = randomBytes(32).toString('base64');
    const clientSecret = `client-secret-${randomBytes(12).toString('hex')}`;
    const dump = join(home, 'browser-env.json');
    const run = await latchkey(['login', mcp.url, '--browser'], {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: key,
      LATCHKEY_CLIENT_SECRET: clientSecret,
      LATCHKEY_FUTURE_TOKEN: 'future-secret-value',
      BROWSER,
      LK_BROWSER_ENV: dump,
      LK_UNRELATED: 'kept',
    });
    assert.equal(run.code, ExitCode.OK, run.stderr);
    const env = JSON.parse(readFileSync(dump, 'utf8')) as Record<string, string>;
    assert.deepEqual(
      Object.keys(env).filter((name) => name.toUpperCase().startsWith('LATCHKEY_')),
      [],
      'no LATCHKEY_* variable reaches the browser',
    );
    const values = Object.values(env).join('\n');
    assert.ok(!values.includes(key), 'the data key is nowhere in the environment');
    assert.ok(!values.includes(clientSecret), 'the client secret is nowhere in the environment');
    // The rest of the user's environment is the browser's: it needs PATH, DISPLAY and the like.
    assert.equal(env['LK_UNRELATED'], 'kept');
    assert.equal(env['PATH'], process.env['PATH']);
  });
});
