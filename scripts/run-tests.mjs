// Runs every test file under test/ with Node's test runner (TypeScript through tsx).
// Usage: node scripts/run-tests.mjs [file-substring ...]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out.sort();
}

const filters = process.argv.slice(2);
// The fleet tests (test/fleet/) run minutes at full load on both cores, so a run of everything
// leaves them to their own phase (scripts/run-suite.sh) instead of starving timing-sensitive
// tests beside them; naming them runs them.
const files = findTests('test').filter((f) =>
  filters.length === 0 ? !f.startsWith(join('test', 'fleet')) : filters.some((s) => f.includes(s)),
);
if (files.length === 0) {
  console.error(`no test files match ${JSON.stringify(filters)}`);
  process.exit(1);
}
// Humans read the spec reporter; a TAP copy goes to a file so the run can end with one
// summary line of counts (the last thing CI logs show).
const scratch = mkdtempSync(join(tmpdir(), 'latchkey-tests-'));
const tap = join(scratch, 'results.tap');
const args = [
  '--import',
  'tsx',
  '--test',
  '--test-concurrency=2',
  // A fleet test runs for minutes by design (issue 16: five minutes of refreshing).
  `--test-timeout=${files.some((f) => f.startsWith(join('test', 'fleet'))) ? 1_800_000 : 300_000}`,
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=tap',
  `--test-reporter-destination=${tap}`,
  ...files,
];
const startedAt = Date.now();
const child = spawn(process.execPath, args, { stdio: 'inherit' });
child.on('exit', (code, signal) => {
  const counts = summary(tap);
  rmSync(scratch, { recursive: true, force: true });
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
  console.log(
    `\nlatchkey tests: ${counts.pass} passed, ${counts.fail} failed, ${counts.skipped} skipped, ` +
      `${counts.cancelled} cancelled (${files.length} files, ${seconds} s)`,
  );
  process.exit(signal ? 1 : (code ?? 1));
});

function summary(file) {
  const counts = { pass: 0, fail: 0, skipped: 0, cancelled: 0 };
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return counts;
  }
  for (const name of Object.keys(counts)) {
    const match = [...text.matchAll(new RegExp(`^# ${name} (\\d+)$`, 'gm'))].at(-1);
    if (match) counts[name] = Number(match[1]);
  }
  return counts;
}
