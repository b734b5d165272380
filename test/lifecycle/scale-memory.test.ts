import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('../fixtures/scale-child.mjs', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/lifecycle/due-queue.js', import.meta.url));

/** The target of issue 16: one instance, 100k credentials, under 200 MB resident. */
const COUNT = 100_000;
const PEAK_RSS_LIMIT_MB = 200;
/**
 * A server's memory budget, given to V8 as a server operator does. It makes the test
 * strict as well as stable: V8 then collects before growing, so what is measured is what
 * the process keeps (unbounded, 100k decrypted credentials need well over 64 MB of heap
 * and the child dies out of memory); without it V8 lets garbage pile up before collecting,
 * which the second case measures (`npm run bench scale` prints both).
 */
const HEAP_MB = 64;

interface ChildReport {
  count: number;
  maxRssMb: number;
  cached: number;
  scheduled: number;
  evictions: number;
  mismatches: number;
  refreshRequests: number;
  timersCreated: number;
  lastStored: number;
}

function runChild(args: string[], heapMb: number | undefined): Promise<ChildReport> {
  const flags = heapMb === undefined ? [] : [`--max-old-space-size=${heapMb}`];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, CHILD, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code !== 0) reject(new Error(`scale child exited ${code ?? signal}: ${err.slice(-2000)}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as ChildReport);
    });
  });
}

function checkReport(report: ChildReport, heap: string): void {
  console.log(
    `# scale (${heap}): peak RSS ${report.maxRssMb} MB for ${COUNT} credentials, ${report.timersCreated} timers created`,
  );
  assert.equal(report.count, COUNT);
  // Every subject got its own token (checked in the child), from the cache or the store.
  assert.equal(report.mismatches, 0);
  assert.equal(report.refreshRequests, 0, 'nothing was due');
  // The cache held its bound, and what left it was unscheduled.
  assert.equal(report.cached, 10_000);
  assert.equal(report.scheduled, 10_000);
  assert.ok(report.evictions >= COUNT - 10_000, `evictions ${report.evictions}`);
  assert.equal(report.lastStored, 1, 'evicted credentials stay in the store');
  // No timer per credential: 110k entries were scheduled while serving.
  assert.ok(report.timersCreated < 1_000, `${report.timersCreated} timers created while serving`);
  assert.ok(
    report.maxRssMb < PEAK_RSS_LIMIT_MB,
    `peak RSS ${report.maxRssMb} MB for ${COUNT} credentials with ${heap} (limit ${PEAK_RSS_LIMIT_MB} MB)`,
  );
}

describe('many subjects in one process', () => {
  it(`100k credentials in SQLite, each served by one manager: peak RSS under ${PEAK_RSS_LIMIT_MB} MB`, async () => {
    assert.ok(existsSync(BUILT), 'the child runs the built library: run `npm run build` first');
    checkReport(await runChild([String(COUNT)], HEAP_MB), `a ${HEAP_MB} MB heap`);
  });

  it(`the same with V8's default heap: still under ${PEAK_RSS_LIMIT_MB} MB`, async () => {
    // The goal as a deployment without a heap budget meets it: V8 lets garbage grow
    // to about four times what survives a collection, so this holds only while what a cached
    // credential keeps stays small (docs/architecture.md, "Many subjects in one process").
    assert.ok(existsSync(BUILT), 'the child runs the built library: run `npm run build` first');
    checkReport(await runChild([String(COUNT)], undefined), "V8's default heap");
  });
});
