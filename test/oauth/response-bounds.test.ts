/**
 * Issue 14, point 4: a hostile authorization server cannot make latchkey hold its answer in
 * memory. Each case runs `latchkey login --device` as its own process against a server on
 * 127.0.0.1 that streams an oversized or endless body from a generator, then checks the
 * process's peak RSS (VmHWM), the error, and that nothing from the refused answer was stored.
 * Before the caps, these runs peaked at 700 MB to 1.5 GB, and two of them logged in.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { openSqliteStore } from '../../src/store/sqlite.js';
import { type HostileMode, startHostileOAuthServer } from '../harness/hostile-oauth.js';
import type { Run } from '../support/spawn-cli.js';

const PEAK_RSS = fileURLToPath(new URL('../fixtures/peak-rss.mjs', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/latchkey.cjs', import.meta.url));
/** Generous: an idle latchkey is ~80 MB; before the caps these runs took 700 MB to 1.5 GB. */
const MAX_PEAK_RSS_MB = 400;

/** A run that would not end by itself (the endless body, before the caps) is killed here. */
const RUN_DEADLINE_MS = 30_000;

/**
 * `latchkey login <server> --device`, killed after RUN_DEADLINE_MS; VmHWM is polled meanwhile
 * so that a killed run still has a figure.
 */
function loginWithDeadline(
  server: string,
  env: Record<string, string>,
): Promise<Run & { polledPeakMb: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'login', server, '--device'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let polledPeakMb = 0;
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const poll = setInterval(() => {
      try {
        const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
        polledPeakMb = Math.max(polledPeakMb, Number(kb ?? 0) / 1024);
      } catch {
        // Exited between two polls.
      }
    }, 100);
    const deadline = setTimeout(() => child.kill('SIGKILL'), RUN_DEADLINE_MS);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(poll);
      clearTimeout(deadline);
      resolve({ code, stdout, stderr, polledPeakMb });
    });
  });
}

describe('bounded reads from a hostile authorization server', () => {
  let home: string;
  let key: string;
  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'latchkey-bounds-'));
    key = randomBytes(32).toString('base64');
  });
  after(async () => {
    await rm(home, { recursive: true, force: true });
  });

  /** Log in against a server in `mode`; the run, its peak RSS in MB and the bytes it was sent. */
  async function loginAgainst(
    mode: HostileMode,
    name: string,
  ): Promise<{ run: Run; peakMb: number; sent: number; issuer: string; dir: string }> {
    const hostile = await startHostileOAuthServer(mode);
    const dir = join(home, name);
    const rssFile = join(home, `${name}.rss`);
    try {
      const run = await loginWithDeadline(hostile.mcpUrl, {
        LATCHKEY_HOME: dir,
        LATCHKEY_KEY: key,
        LATCHKEY_TEST_PEAK_RSS_FILE: rssFile,
        NODE_OPTIONS: `--import ${PEAK_RSS}`,
      });
      // The exit hook's figure is exact; a process killed at the deadline has only the polled one.
      const atExit = Number(await readFile(rssFile, 'utf8').catch(() => '0')) / 1024;
      const peakMb = Math.max(atExit, run.polledPeakMb);
      return { run, peakMb, sent: hostile.hostileBytes, issuer: hostile.origin, dir };
    } finally {
      await hostile.close();
    }
  }

  /** No credential at all; with `registration`, no registration at `issuer` either. */
  async function assertNothingStored(dir: string, issuer: string, registration = false): Promise<void> {
    const store = await openSqliteStore({ home: dir, env: { LATCHKEY_KEY: key } });
    try {
      assert.deepEqual(await store.listCredentials(), [], 'no credential from a refused answer');
      if (registration) {
        assert.equal(await store.getRegistration(issuer), undefined, 'no registration from a refused answer');
      }
    } finally {
      await store.close();
    }
  }

  for (const [mode, what] of [
    ['huge-registration', /client registration response from 127\.0\.0\.1:\d+ .*past the 262144-byte limit/],
    ['huge-access-token', /authorization server response from 127\.0\.0\.1:\d+ .*past the 131072-byte limit/],
    ['endless-token', /authorization server response from 127\.0\.0\.1:\d+ .*past the 131072-byte limit/],
    [
      'huge-error-description',
      /authorization server response from 127\.0\.0\.1:\d+ .*past the 131072-byte limit/,
    ],
  ] as const) {
    it(`${mode}: refused with a clear error, peak RSS under ${MAX_PEAK_RSS_MB} MB, nothing stored`, async () => {
      const { run, peakMb, sent, issuer, dir } = await loginAgainst(mode, mode);
      console.log(`${mode}: peak RSS ${peakMb.toFixed(0)} MB, ${sent} bytes sent, exit ${run.code}`);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, what);
      assert.match(run.stderr, /nothing from it was kept/);
      assert.ok(peakMb < MAX_PEAK_RSS_MB, `peak RSS ${peakMb.toFixed(0)} MB`);
      // The read stopped near the limit: the server did not get to send its 100 MB.
      assert.ok(sent < 32 * 1024 * 1024, `the server sent ${sent} bytes`);
      await assertNothingStored(dir, issuer, mode === 'huge-registration');
    });
  }

  it('a token over the 32 KiB token limit, in an answer under the body limit, is refused and not stored', async () => {
    const { run, issuer, dir } = await loginAgainst('long-access-token', 'long-token');
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      /the access_token from the authorization server is 40960 bytes, over the 32768-byte limit/,
    );
    assert.match(run.stderr, /nothing from it was kept/);
    await assertNothingStored(dir, issuer);
  });
});
