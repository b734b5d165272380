// Operations of `latchkey serve` with real parts: /metrics after real refreshes at the real
// AS, direct TLS with a self-signed certificate made here (openssl) and a client that trusts
// it, and a graceful stop of the real CLI process (SIGTERM) during a slow request.
// The SIGTERM test spawns dist/: `npm run build` first.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, it } from 'node:test';

import { runServe } from '../../src/cli/commands/serve.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { createLogger } from '../../src/log.js';
import { createAppKey } from '../../src/serve/app-keys.js';
import { startServe } from '../../src/serve/server.js';
import { hasServeTables, type ServeStore } from '../../src/store/serve-contract.js';
import { obtainTokens } from '../harness/index.js';
import { captureIO } from '../support/cli-io.js';
import { lifecycleEnv, type LifecycleEnv, sleep } from '../support/lifecycle-env.js';
import { SseReader } from './sse-reader.js';

const BIN = fileURLToPath(new URL('../../bin/latchkey.cjs', import.meta.url));

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups.length = 0;
});

async function environment(accessTokenTtl: number): Promise<{ env: LifecycleEnv; store: ServeStore }> {
  const env = await lifecycleEnv({ accessTokenTtl });
  cleanups.push(() => env.close());
  const store = await env.openStore();
  assert.ok(hasServeTables(store));
  return { env, store };
}

/** `name{labels} value` lines of one family, as a map from the label text to the value. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(?:\\{(.*)\\})? (\\S+)$`).exec(line);
    if (m !== null) out.set(m[1] ?? '', Number(m[2]));
  }
  return out;
}

describe('serve: operations', () => {
  it('/metrics: refreshes by AS and outcome, due backlog, open streams, latency by route template', async () => {
    // 4-s tokens: the refresher refreshes them within seconds of the login.
    const { env, store } = await environment(4);
    const serve = await startServe({
      store,
      upstreams: [{ id: 'demo', url: env.server }],
      listen: { host: '127.0.0.1', port: 0 },
      logger: createLogger({ level: 'silent' }),
    });
    cleanups.push(() => serve.close());
    const key = (await createAppKey(store, 'portal')).key;
    const stream = await SseReader.open(`${serve.url}/v1/events`, { authorization: `Bearer ${key}` });
    cleanups.push(() => stream.close());
    // An instance that crashed while holding user-kept's lease: the refresher takes it over
    // once it has expired, and counts the takeover.
    const kept = await obtainTokens(env.as, { resource: env.server, subject: 'user-kept' });
    const crashed = { owner: 'crashed-instance:4242:dead', pid: 4242, host: 'elsewhere.example' };
    const keptKey = { server: env.server, issuer: kept.issuer, subject: 'user-kept' };
    assert.ok(await store.acquireLease(keptKey, crashed, 1_000));
    await serve.manager.saveAcquired(env.server, {
      issuer: kept.issuer,
      clientId: kept.clientId,
      subject: 'user-kept',
      requestedAt: kept.requestedAt,
      response: kept.response,
    });
    const doomed = await obtainTokens(env.as, { resource: env.server, subject: 'user-revoked' });
    await env.as.revokeGrants('user-revoked');
    await serve.manager.saveAcquired(env.server, {
      issuer: doomed.issuer,
      clientId: doomed.clientId,
      subject: 'user-revoked',
      requestedAt: doomed.requestedAt,
      response: doomed.response,
    });
    await stream.waitFor((m) => m.event === 'refreshed' && m.data['subject'] === 'user-kept', 20_000);
    await stream.waitFor((m) => m.event === 'needs-login' && m.data['subject'] === 'user-revoked', 20_000);
    const token = await fetch(`${serve.url}/v1/subjects/user-kept/connections/demo/token`, {
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(token.status, 200);

    const scraped = await fetch(`${serve.url}/metrics`);
    assert.equal(scraped.status, 200, 'no key needed');
    assert.match(scraped.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await scraped.text();
    const issuer = doomed.issuer;
    const refreshes = samples(text, 'latchkey_refreshes_total');
    assert.ok((refreshes.get(`issuer="${issuer}",outcome="refreshed"`) ?? 0) >= 1, text);
    assert.equal(refreshes.get(`issuer="${issuer}",outcome="needs_login"`), 1, text);
    assert.equal(samples(text, 'latchkey_sse_streams').get(''), 1);
    assert.equal(samples(text, 'latchkey_lease_takeovers_total').get(''), 1, 'the crashed lease');
    assert.ok(Number.isInteger(samples(text, 'latchkey_refresh_due_backlog').get('')));
    const tokenRoute = 'route="/v1/subjects/{subject}/connections/{upstream}/token"';
    const count = samples(text, 'latchkey_http_request_duration_seconds_count');
    assert.equal(count.get(`method="GET",${tokenRoute},status="200"`), 1, text);
    const inf = samples(text, 'latchkey_http_request_duration_seconds_bucket');
    assert.equal(inf.get(`method="GET",${tokenRoute},status="200",le="+Inf"`), 1);
    assert.ok(!text.includes('user-kept') && !text.includes('user-revoked'), 'no subject in any label');
    assert.match(text, /# TYPE latchkey_http_request_duration_seconds histogram/);
    await stream.close();
    for (let i = 0; i < 50; i++) {
      const again = await (await fetch(`${serve.url}/metrics`)).text();
      if (samples(again, 'latchkey_sse_streams').get('') === 0) return;
      await sleep(20);
    }
    assert.fail('a closed stream leaves the open-streams gauge');
  });

  it('--tls-cert/--tls-key: HTTPS with a certificate a client trusts; the pair is required together', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'latchkey-tls-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-days',
        '1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const ca = await readFile(cert);
    const { env } = await environment(300);
    const io = captureIO({ ...process.env, ...env.env, LATCHKEY_LOG_LEVEL: 'silent' });
    let stop!: () => void;
    const until = new Promise<void>((resolve) => (stop = resolve));
    const running = runServe(io, {
      upstream: [`demo=${env.server}`],
      listen: '127.0.0.1:0',
      refresher: false,
      tlsCert: cert,
      tlsKey: key,
      until,
    });
    try {
      let url: string | undefined;
      for (let i = 0; i < 200 && url === undefined; i++) {
        url = /listening on (https:\/\/\S+)/.exec(io.stderr)?.[1];
        if (url === undefined) await sleep(25);
      }
      assert.ok(url !== undefined, `serve did not start on https: ${io.stderr}`);
      const trusted = await get(`${url}/healthz`, ca);
      assert.equal(trusted.status, 200);
      assert.deepEqual(JSON.parse(trusted.body), { status: 'ok' });
      await assert.rejects(get(`${url}/healthz`, undefined), /self-signed|self signed/);
      const plain = await fetch(`${url.replace('https:', 'http:')}/healthz`).catch((error: unknown) => error);
      assert.ok(plain instanceof Error, 'no plain HTTP on the TLS port');
    } finally {
      stop();
      await running;
    }
    const half = captureIO({ ...process.env, ...env.env });
    const code = await main(['serve', '--upstream', `demo=${env.server}`, '--tls-cert', cert], half);
    assert.equal(code, ExitCode.USAGE);
    assert.match(half.stderr, /--tls-cert and --tls-key go together/);
  });

  it('SIGTERM during a slow request: no new connections, the request completes, leases are released, exit 0', async () => {
    const { env, store } = await environment(2);
    const key = (await createAppKey(store, 'portal')).key;
    const tokens = await obtainTokens(env.as, { resource: env.server, subject: 'sue' });
    const saver = env.manager(store, { watch: false, proactiveRefresh: false });
    await saver.saveAcquired(env.server, {
      issuer: tokens.issuer,
      clientId: tokens.clientId,
      subject: 'sue',
      requestedAt: tokens.requestedAt,
      response: tokens.response,
    });
    const child = spawn(
      process.execPath,
      [BIN, 'serve', '--upstream', `demo=${env.server}`, '--listen', '127.0.0.1:0', '--no-refresher'],
      {
        env: { ...process.env, ...env.env, LATCHKEY_LOG_LEVEL: 'info' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    });
    let url: string | undefined;
    for (let i = 0; i < 400 && url === undefined; i++) {
      url = /listening on (http:\/\/\S+)/.exec(stderr)?.[1];
      if (url === undefined) await sleep(25);
    }
    assert.ok(url !== undefined, `serve did not start: ${stderr}`);
    await sleep(2_100); // sue's 2-s token is unusable: the token call must refresh at the AS
    const held = env.proxy.inject({ path: '/token', exact: true, action: { type: 'hold' } });
    const slow = fetch(`${url}/v1/subjects/sue/connections/demo/token`, {
      headers: { authorization: `Bearer ${key}` },
    });
    await held.arrived; // the request is in flight, holding the refresh lease
    assert.equal((await store.listLeases({ subject: 'sue' })).length, 1, 'the refresh holds the lease');
    child.kill('SIGTERM');
    let refused = false;
    for (let i = 0; i < 250 && !refused; i++) {
      refused = await fetch(`${url}/healthz`).then(
        () => false,
        () => true,
      );
      if (!refused) await sleep(20);
    }
    assert.ok(refused, `a stopping service accepts no new connections: ${stderr}`);
    assert.equal(child.exitCode, null, 'it waits for the request in flight');
    held.release();
    const answer = await slow;
    assert.equal(answer.status, 200);
    const body = (await answer.json()) as Record<string, unknown>;
    assert.equal(typeof body['access_token'], 'string');
    assert.notEqual(body['access_token'], tokens.response.access_token, 'a refreshed token');
    assert.equal(await exited, 0, stderr);
    assert.deepEqual(await store.listLeases({ subject: 'sue' }), [], 'no lease left behind');
    // Stored before the process exited (a proactive refresh of the new 2-s token may follow it,
    // so the row can hold a still newer generation than the one answered).
    const stored = (await store.listCredentials({ subject: 'sue' }))[0];
    assert.ok(stored !== undefined && stored.secrets.accessToken !== tokens.response.access_token);
    const refreshed = await store.readEvents({});
    assert.ok(refreshed.some((e) => e.type === 'refreshed' && e.subject === 'sue'));
  });
});

function get(url: string, ca: Buffer | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, ca === undefined ? {} : { ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
