// Runs the storm against the peer (bench/sdk-storm-worker.ts): same AS settings, same
// 8 processes x 25 callers, same expired token. Prints what the AS saw.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { lifecycleEnv, sleep } from '../test/support/lifecycle-env.js';

const WORKER = fileURLToPath(new URL('./sdk-storm-worker.ts', import.meta.url));

export async function benchSdkStorm(processes = 8, callers = 25) {
  const env = await lifecycleEnv({ accessTokenTtl: 1, rotateRefreshToken: true });
  try {
    const store = await env.openStore();
    await env.login(store);
    const [cred] = await store.listCredentials();
    if (cred?.secrets.refreshToken === undefined) throw new Error('no refresh token to storm with');
    await sleep(1100);
    env.as.counters.reset();
    const workers = Array.from({ length: processes }, () =>
      spawn(process.execPath, ['--import', 'tsx', WORKER], {
        env: {
          ...process.env,
          LK_ISSUER: env.as.issuer,
          LK_CLIENT_ID: cred.clientId,
          LK_SERVER: env.server,
          LK_CALLERS: String(callers),
        },
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    );
    const lines = workers.map((w) => {
      const out: string[] = [];
      let buffer = '';
      w.stdout.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const parts = buffer.split('\n');
        buffer = parts.pop() ?? '';
        out.push(...parts);
      });
      return out;
    });
    const waitFor = async (n: number): Promise<void> => {
      while (lines.some((l) => l.length < n)) await sleep(10);
    };
    await waitFor(1);
    for (const w of workers) w.stdin.write(`${cred.secrets.refreshToken}\n`);
    await waitFor(2);
    const results = lines.map((l) => JSON.parse(l[1] ?? '{}') as { ok: number; failed: number });
    await store.close();
    return {
      refreshRequests: env.as.counters.count('refresh_token'),
      invalidGrant: env.as.counters.count('refresh_token', 'invalid_grant'),
      callersWithToken: results.reduce((n, r) => n + r.ok, 0),
      callersFailed: results.reduce((n, r) => n + r.failed, 0),
    };
  } finally {
    await env.close();
  }
}
