// Cold-process time to first token: a new Node process opens the default SQLite store,
// finds a valid credential and returns it. Measured from spawn to the token, and inside the
// process from its own start (so Node's boot is visible separately). Uses the built package
// (dist/), as a user's process would, not the TypeScript sources.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { CredentialManager } from '../src/lifecycle/manager.js';
import { silentLogger } from '../src/log.js';
import { openSqliteStore } from '../src/store/sqlite.js';

const SCRIPT = fileURLToPath(new URL('./cold-start-child.mjs', import.meta.url));
const SERVER = 'https://mcp.example.com/mcp';

export async function benchColdStart(options: { runs?: number; keySource: 'env' | 'keyring' }) {
  const runs = options.runs ?? 10;
  const home = await mkdtemp(join(tmpdir(), 'latchkey-bench-'));
  const env: NodeJS.ProcessEnv = { ...process.env, LATCHKEY_HOME: home };
  if (options.keySource === 'env') env['LATCHKEY_KEY'] = randomBytes(32).toString('base64');
  else delete env['LATCHKEY_KEY'];
  try {
    const store = await openSqliteStore({
      home,
      env,
      keyStorage: options.keySource === 'keyring' ? 'keyring' : 'auto',
    });
    const manager = new CredentialManager({
      store,
      logger: silentLogger,
      watch: false,
      proactiveRefresh: false,
    });
    await manager.saveAcquired(SERVER, {
      issuer: 'https://as.example.com',
      clientId: 'bench',
      requestedAt: Date.now(),
      response: { access_token: randomBytes(32).toString('hex'), token_type: 'Bearer', expires_in: 3600 },
    });
    manager.close();
    await store.close();
    const wall: number[] = [];
    const inside: number[] = [];
    for (let i = 0; i < runs; i++) {
      const result = await runChild(env);
      wall.push(result.wallMs);
      inside.push(result.insideMs);
    }
    return {
      runs,
      keySource: options.keySource,
      medianWallMs: median(wall),
      medianInProcessMs: median(inside),
    };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

function runChild(env: NodeJS.ProcessEnv): Promise<{ wallMs: number; insideMs: number }> {
  const start = performance.now();
  const child = spawn(process.execPath, [SCRIPT, SERVER], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      const wallMs = performance.now() - start;
      if (code !== 0) reject(new Error(`cold-start child exited ${code}`));
      else resolve({ wallMs, insideMs: (JSON.parse(out) as { insideMs: number }).insideMs });
    });
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round((sorted[Math.floor(sorted.length / 2)] ?? NaN) * 10) / 10;
}
