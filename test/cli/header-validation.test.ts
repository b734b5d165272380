import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { parseHeaders } from '../../src/cli/server-args.js';
import { isLatchkeyError } from '../../src/errors.js';
import { latchkey } from '../support/spawn-cli.js';

/**
 * Issue 14, point 7: a `--header` value that cannot be sent (after `${VAR}` expansion) is
 * refused when the command starts, with exit 2, naming the header and the variable but never
 * the value; no request leaves.
 */
describe('--header values are validated at start-up', () => {
  let server: Server;
  let url: string;
  let home: string;
  let requests = 0;
  before(async () => {
    server = createServer((_req, res) => {
      requests++;
      res.writeHead(500).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
    home = await mkdtemp(join(tmpdir(), 'latchkey-headers-'));
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(home, { recursive: true, force: true });
  });

  const secret = `sk-${randomBytes(12).toString('hex')}`;
  const cases = [
    ['a trailing newline', `${secret}\n`, /a line break \(CR or LF\)/],
    ['a CRLF header injection', `${secret}\r\nX-Injected: 1`, /a line break \(CR or LF\)/],
    ['a DEL', `${secret}\u007f`, /a control character/],
    ['an emoji', `${secret}🔑`, /outside Latin-1/],
    ['an escape sequence', `${secret}\u001b[2J`, /a control character/],
  ] as const;
  const commands = [
    ['proxy', (): string[] => ['proxy', url]],
    ['tools', (): string[] => ['tools', url]],
    ['call', (): string[] => ['call', url, 'echo', '{}']],
  ] as const;

  for (const [command, args] of commands) {
    for (const [what, value, problem] of cases) {
      it(`${command}: a \${VAR} value with ${what} exits 2, naming the header and variable, not the value`, async () => {
        const before = requests;
        const run = await latchkey(
          [...args(), '--header', 'X-Api-Key: Bearer ${LK_TEST_API_KEY}'],
          {
            LATCHKEY_HOME: home,
            LATCHKEY_KEY: randomBytes(32).toString('base64'),
            LK_TEST_API_KEY: value,
          },
          undefined,
          command === 'proxy' ? '' : undefined,
        );
        assert.equal(run.code, ExitCode.USAGE, run.stderr);
        assert.match(run.stderr, /--header X-Api-Key \(from \$\{LK_TEST_API_KEY\}\)/);
        assert.match(run.stderr, problem);
        assert.ok(!(run.stdout + run.stderr).includes(secret), `the value was echoed: ${run.stderr}`);
        assert.equal(run.stdout, '', 'nothing on stdout');
        assert.equal(requests, before, 'no request reached the server');
      });
    }
  }

  it('a NUL (which no environment variable can hold, but a library caller can pass) is refused too', () => {
    assert.throws(
      () => parseHeaders(['X-Api-Key: ${K}'], { K: `${secret}\u0000` }, url),
      (error: unknown) =>
        isLatchkeyError(error) &&
        error.code === 'INVALID_INPUT' &&
        /a NUL character/.test(error.message) &&
        !error.message.includes(secret),
    );
    assert.deepEqual(parseHeaders(['X-Api-Key: ${K}'], { K: secret }, url), { 'X-Api-Key': secret });
  });

  it('a header written without its name (a secret pasted alone) is refused without echoing it', () => {
    for (const pair of [secret, `Authorization=Bearer ${secret}`, `: ${secret}`]) {
      assert.throws(
        () => parseHeaders([pair], {}, url),
        (error: unknown) =>
          isLatchkeyError(error) &&
          error.code === 'INVALID_INPUT' &&
          /has no valid name/.test(error.message) &&
          !error.message.includes(secret.slice(0, 12)),
      );
    }
  });

  it('a literal value with a tab is still accepted (RFC 9110 allows it): the request is sent', async () => {
    const before = requests;
    const run = await latchkey(['tools', url, '--header', 'X-Note: a\tb'], {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: randomBytes(32).toString('base64'),
    });
    assert.notEqual(run.code, ExitCode.USAGE, run.stderr);
    assert.ok(requests > before, 'the request went out');
  });
});
