// Memory of one instance that knows many credentials (issue 16: under 200 MB RSS for 100k).
// A child fills a fresh SQLite store through the store API, then one CredentialManager
// serves every subject once (and every 7th again); the child reports its peak RSS. Run on
// the built library (scripts/bench.sh builds), with V8's default heap and with a 64 MB
// budget, because V8 collects lazily when it may: the first figure is what a process
// without a budget reaches, the second what it needs.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('../test/fixtures/scale-child.mjs', import.meta.url));

interface ChildReport {
  fillMs: number;
  serveMs: number;
  afterFill: { maxRss: number };
  maxRssMb: number;
  rssMb: number;
  cached: number;
  evictions: number;
  mismatches: number;
}

function run(count: number, heapMb: number | undefined): Promise<ChildReport> {
  const flags = heapMb === undefined ? [] : [`--max-old-space-size=${heapMb}`];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, CHILD, String(count)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as ChildReport)
        : reject(new Error(`scale child exited ${code}`)),
    );
  });
}

export async function benchScale(): Promise<Record<string, string | number>> {
  const figures: Record<string, string | number> = {};
  for (const count of [10_000, 100_000]) {
    for (const heapMb of [undefined, 64]) {
      const r = await run(count, heapMb);
      const label = `${count / 1000}k known, ${heapMb === undefined ? 'default heap' : `heap ${heapMb} MB`}`;
      figures[`${label}: peak RSS MB (after fill / overall)`] = `${r.afterFill.maxRss} / ${r.maxRssMb}`;
      figures[`${label}: cached, evictions, wrong tokens`] = `${r.cached}, ${r.evictions}, ${r.mismatches}`;
      figures[`${label}: fill s, serve s`] =
        `${(r.fillMs / 1000).toFixed(1)}, ${(r.serveMs / 1000).toFixed(1)}`;
    }
  }
  return figures;
}
