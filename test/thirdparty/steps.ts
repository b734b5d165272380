/**
 * The steps every third-party server goes through (login, call, proxy, a refresh across
 * processes, logout, doctor, a forgotten client), as helpers the per-server files share.
 * Everything runs as real processes: the built `latchkey` binary, `manager-worker` fixtures
 * on one SQLite store, and headless Chromium as the browser.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Finding } from '../../src/cli/commands/doctor.js';
import type { StoredCredential } from '../../src/credential/model.js';
import { fingerprint } from '../../src/redact.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { Run } from '../support/spawn-cli.js';
import { startWorker } from '../support/worker.js';

const BIN = fileURLToPath(new URL('../../bin/latchkey.cjs', import.meta.url));
const WORKER = fileURLToPath(new URL('../fixtures/manager-worker.ts', import.meta.url));
export const BROWSER = fileURLToPath(new URL('./browser.ts', import.meta.url));

/** A private store directory and the environment every latchkey process of a file shares. */
export async function privateHome(extra: Record<string, string> = {}): Promise<{
  home: string;
  env: Record<string, string>;
}> {
  const home = await mkdtemp(join(tmpdir(), 'latchkey-thirdparty-'));
  const env = {
    LATCHKEY_HOME: home,
    LATCHKEY_KEY: randomBytes(32).toString('base64'),
    BROWSER,
    // A browser left on an error page gives up before the tests' own login bounds (20 s).
    LK_BROWSER_TIMEOUT_MS: '15000',
    ...extra,
  };
  return { home, env };
}

/**
 * `latchkey <args>` from the built binary, killed after `timeoutMs` (so a command that would
 * hang for its own 300 s login timeout fails the test in bounded time instead).
 */
export function cli(
  args: readonly string[],
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<Run & { ms: number; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const startedAt = Date.now();
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - startedAt, timedOut });
    });
  });
}

export async function storedCredential(env: Record<string, string>): Promise<StoredCredential | undefined> {
  const store = await openSqliteStore({ env: { ...process.env, ...env } });
  try {
    const all = await store.listCredentials();
    return all[0];
  } finally {
    await store.close();
  }
}

/**
 * Move the stored credential's access-token expiry into the past, as an hour passing would
 * (the servers' own tokens are expired alongside by the caller). Keeps the tokens.
 */
export async function ageCredential(env: Record<string, string>): Promise<StoredCredential> {
  const store = await openSqliteStore({ env: { ...process.env, ...env } });
  try {
    const [cred] = await store.listCredentials();
    if (cred === undefined) throw new Error('no credential to age');
    const { generation, status: _status, updatedAt: _updatedAt, ...record } = cred;
    const lifetime = cred.expiresAt === undefined ? 3_600_000 : cred.expiresAt - cred.obtainedAt;
    const expiresAt = Date.now() - 60_000;
    const result = await store.writeCredential(
      { ...record, obtainedAt: expiresAt - lifetime, expiresAt },
      { expectedGeneration: generation },
      { type: 'acquired', server: cred.key.server, issuer: cred.key.issuer, subject: cred.key.subject },
    );
    if (!result.ok) throw new Error(`could not age the credential: ${result.reason}`);
    const aged = await store.getCredential(cred.key);
    if (aged === undefined) throw new Error('the aged credential vanished');
    return aged;
  } finally {
    await store.close();
  }
}

export interface StormResult {
  tokens: string[];
  errors: { code?: string; message: string }[];
  refreshRequests: number;
}

/**
 * `processes` manager-worker processes on the shared store, each asking `callers` times at
 * once for a token for `server` (proactive refresh off, so only the expired token drives it).
 */
export async function refreshStorm(
  env: Record<string, string>,
  server: string,
  processes = 5,
  callers = 5,
): Promise<StormResult> {
  const workers = Array.from({ length: processes }, () =>
    startWorker(WORKER, { ...env, LK_SERVER: server, LK_PROACTIVE: '0' }),
  );
  try {
    await Promise.all(workers.map((w) => w.next((m) => m.type === 'ready')));
    const results = workers.map((w) =>
      w.next<{ tokens: string[]; errors: StormResult['errors']; stats: { refreshRequests: number } }>(
        (m) => m.type === 'result',
      ),
    );
    for (const w of workers) w.send({ cmd: 'get', callers });
    const all = await Promise.all(results);
    for (const w of workers) w.send({ cmd: 'exit' });
    await Promise.all(workers.map((w) => w.exited));
    return {
      tokens: all.flatMap((r) => r.tokens),
      errors: all.flatMap((r) => r.errors),
      refreshRequests: all.reduce((n, r) => n + r.stats.refreshRequests, 0),
    };
  } finally {
    for (const w of workers) w.kill('SIGKILL');
  }
}

export { fingerprint };

/** A refresh_token grant sent by hand (public client), to see whether the AS still honours it. */
export async function rawRefresh(
  tokenEndpoint: string,
  clientId: string,
  refreshToken: string,
): Promise<{ status: number; error?: string }> {
  const response = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: clientId,
    }),
  });
  const body = (await response.json().catch(() => ({}))) as { error?: string };
  return { status: response.status, ...(body.error === undefined ? {} : { error: body.error }) };
}

/** The HTTP status the MCP server gives an `initialize` carrying `accessToken`. */
export async function bearerStatus(url: string, accessToken: string): Promise<number> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${accessToken}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'probe', version: '1' },
      },
    }),
  });
  await response.body?.cancel();
  return response.status;
}

/** `latchkey doctor <url> --json`: exit code and findings. */
export async function doctor(
  url: string,
  env: Record<string, string>,
): Promise<{ code: number | null; findings: Finding[]; stderr: string }> {
  const run = await cli(['doctor', url, '--json'], env);
  const findings =
    run.stdout.trim() === '' ? [] : (JSON.parse(run.stdout) as { findings: Finding[] }).findings;
  return { code: run.code, findings, stderr: run.stderr };
}
