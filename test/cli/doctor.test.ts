import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { Finding } from '../../src/cli/commands/doctor.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { startAuthorizationServer, startMcpServer } from '../harness/index.js';
import { captureIO } from '../support/cli-io.js';

async function doctorOn(
  asOptions: Parameters<typeof startAuthorizationServer>[0],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; findings: Finding[] }> {
  const as = await startAuthorizationServer(asOptions);
  const mcp = await startMcpServer({ authorizationServer: as });
  try {
    const io = captureIO(env);
    const code = await main(['doctor', mcp.url, '--json'], io);
    return { code, findings: (JSON.parse(io.stdout) as { findings: Finding[] }).findings };
  } finally {
    await mcp.close();
    await as.close();
  }
}

const verdict = (findings: Finding[], check: string): string | undefined =>
  findings.find((f) => f.check === check)?.verdict;

describe('latchkey doctor', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'latchkey-doctor-'));
    env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
  });
  after(() => rm(home, { recursive: true, force: true }));

  it('is all ok against the harness', async () => {
    const { code, findings } = await doctorOn({}, env);
    assert.equal(code, ExitCode.OK);
    assert.deepEqual(
      findings.filter((f) => f.verdict !== 'ok'),
      [],
    );
    for (const check of [
      'server challenge',
      'clock',
      'protected resource metadata',
      'PKCE',
      'registration',
      'revocation',
      'store',
    ]) {
      assert.equal(verdict(findings, check), 'ok', check);
    }
  });

  it('warns, with a fix, when the AS has no revocation endpoint', async () => {
    const { code, findings } = await doctorOn({ revocation: false }, env);
    assert.equal(code, ExitCode.OK, 'a warning is not a failure');
    const revocation = findings.find((f) => f.check === 'revocation');
    assert.equal(revocation?.verdict, 'warn');
    assert.match(revocation?.fix ?? '', /stay valid/);
  });

  it('warns, with a fix, when the AS does not offer the refresh_token grant', async () => {
    const { code, findings } = await doctorOn({ refreshTokenGrant: false }, env);
    assert.equal(code, ExitCode.OK, 'a warning is not a failure');
    const refresh = findings.find((f) => f.check === 'refresh tokens');
    assert.equal(refresh?.verdict, 'warn');
    assert.match(refresh?.detail ?? '', /refresh_token grant not supported/);
    assert.match(refresh?.fix ?? '', /new login every time the access token expires/);
    assert.equal(verdict(findings, 'revocation'), 'ok', 'only the refresh finding changes');
  });

  it('human output marks each finding', async () => {
    const as = await startAuthorizationServer({});
    const mcp = await startMcpServer({ authorizationServer: as });
    try {
      const io = captureIO(env);
      assert.equal(await main(['doctor', mcp.url], io), ExitCode.OK);
      assert.match(io.stdout, /^ok {4}PKCE: S256 advertised$/m);
    } finally {
      await mcp.close();
      await as.close();
    }
  });
});
