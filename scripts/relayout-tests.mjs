// One-off (issue 15 point 7): put test/ in one scheme, per layer, mirroring src/.
// Tests of the base modules at the root of src/ (errors, log, network-text) sit at the root of
// test/; every other test sits in the folder of the src/ layer whose module it tests. A test that
// drives several layers goes where its subject is (e.g. doctor/login agreement is a CLI fact).
//
// Usage: node scripts/relayout-tests.mjs [--dry-run]
// Idempotent: a file already at its new path is left alone, a file that no longer exists is
// reported, and a test file at test/*.test.ts or test/unit/ that the mapping does not know is
// reported, not moved. Relative import specifiers (static, dynamic, `new URL(…, import.meta.url)`)
// in moved files and in every file that points at a moved file are rewritten; mentions of the
// old paths in the docs are rewritten too. The lead deletes this script after running it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';

/** old path → new path, both relative to the repository root. */
const MAPPING = [
  // CLI: the command line as a user runs it.
  ['test/cli.test.ts', 'test/cli/commands.test.ts'],
  ['test/cli-agreement.test.ts', 'test/cli/agreement.test.ts'],
  ['test/cli-browser-env.test.ts', 'test/cli/browser-env.test.ts'],
  ['test/cli-call.test.ts', 'test/cli/call.test.ts'],
  ['test/cli-demo-terminal.test.ts', 'test/cli/demo-terminal.test.ts'],
  ['test/cli-demo.test.ts', 'test/cli/demo.test.ts'],
  ['test/cli-doctor.test.ts', 'test/cli/doctor.test.ts'],
  ['test/cli-e2e.test.ts', 'test/cli/e2e.test.ts'],
  ['test/cli-header-validation.test.ts', 'test/cli/header-validation.test.ts'],
  ['test/cli-login.test.ts', 'test/cli/login.test.ts'],
  ['test/cli-no-browser.test.ts', 'test/cli/no-browser.test.ts'],
  ['test/cli-redirect-policy.test.ts', 'test/cli/redirect-policy.test.ts'],
  ['test/cli-reset.test.ts', 'test/cli/reset.test.ts'],
  ['test/cli-revocation.test.ts', 'test/cli/revocation.test.ts'],
  ['test/cli-store-corrupt.test.ts', 'test/cli/store-corrupt.test.ts'],
  ['test/cli-terminal.test.ts', 'test/cli/terminal.test.ts'],
  ['test/cli-ux.test.ts', 'test/cli/ux.test.ts'],
  // Network text through every command and the proxy: what the terminal finally shows.
  ['test/hostile-text.test.ts', 'test/cli/hostile-text.test.ts'],
  ['test/oauth/doctor-login-agreement.test.ts', 'test/cli/doctor-login-agreement.test.ts'],
  ['test/unit/fit.test.ts', 'test/cli/fit.test.ts'],
  ['test/unit/spinner.test.ts', 'test/cli/spinner.test.ts'],
  // Base modules at the root of src/.
  ['test/unit/network-text.test.ts', 'test/network-text.test.ts'],
  ['test/unit/redaction.test.ts', 'test/redaction.test.ts'],
  // credential/
  ['test/unit/credential.test.ts', 'test/credential/credential.test.ts'],
  ['test/oauth/canonical-url.property.test.ts', 'test/credential/canonical-url.property.test.ts'],
  // store/ (store-contract.ts is the shared suite the three store tests run)
  ['test/store-contract.ts', 'test/store/contract.ts'],
  ['test/store.keyring.test.ts', 'test/store/keyring.test.ts'],
  ['test/store.memory.test.ts', 'test/store/memory.test.ts'],
  ['test/store.sqlite.test.ts', 'test/store/sqlite.test.ts'],
  // oauth/ protocol core (the rest of test/oauth stays where it is)
  ['test/unit/bounded-fetch.test.ts', 'test/oauth/bounded-fetch.test.ts'],
  ['test/unit/id-token-tolerance.test.ts', 'test/oauth/id-token-tolerance.test.ts'],
  ['test/unit/token-error.test.ts', 'test/oauth/token-error.test.ts'],
  // lifecycle/
  ['test/unit/backoff.test.ts', 'test/lifecycle/backoff.test.ts'],
  // login/: the interactive flows that move from src/oauth to src/login
  ['test/oauth/authorization-code.test.ts', 'test/login/authorization-code.test.ts'],
  ['test/oauth/browser-login.test.ts', 'test/login/browser-login.test.ts'],
  ['test/oauth/client-credentials.test.ts', 'test/login/client-credentials.test.ts'],
  ['test/oauth/device-authorization.test.ts', 'test/login/device-authorization.test.ts'],
  ['test/oauth/login.test.ts', 'test/login/login.test.ts'],
  // mcp/ (recovery-decision is the table test helper "mcp" may add under test/unit)
  ['test/unit/request-metadata.test.ts', 'test/mcp/request-metadata.test.ts'],
  ['test/unit/rpc-codes.test.ts', 'test/mcp/rpc-codes.test.ts'],
  ['test/unit/recovery-decision.test.ts', 'test/mcp/recovery-decision.test.ts'],
  // proxy/
  ['test/unit/device-agent.test.ts', 'test/proxy/device-agent.test.ts'],
  // The test harness's own tests sit beside it.
  ['test/harness.test.ts', 'test/harness/harness.test.ts'],
  ['test/harness-modern.test.ts', 'test/harness/modern.test.ts'],
];

/** Root-level test files that belong at the root (base modules); not reported as strays. */
const ROOT_TESTS = new Set(MAPPING.map(([, to]) => to).filter((to) => posix.dirname(to) === 'test'));
const CODE = /\.(?:ts|mts|cts|js|mjs|cjs)$/;
const DOCS = /\.md$/;
// Relative specifiers: `from '…'`, `import '…'`, `import('…')`, `new URL('…', import.meta.url)`.
const SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\bnew URL\(\s*)(['"])(\.\.?\/[^'"\n]+)\2/g;

const dryRun = process.argv.includes('--dry-run');
const root = git(['rev-parse', '--show-toplevel']).trim();
process.chdir(root);

const moved = moveFiles();
rewriteSpecifiers(moved);
rewriteDocs(moved);
reportStrays();
if (!dryRun) checkRunnerFindsTests();

function moveFiles() {
  /** @type {Map<string, string>} old → new, for files moved in this run */
  const done = new Map();
  for (const [from, to] of MAPPING) {
    const hasFrom = existsSync(from);
    const hasTo = existsSync(to);
    if (hasFrom && hasTo) console.log(`conflict  ${from} and ${to} both exist; left alone`);
    else if (!hasFrom && hasTo) console.log(`in place  ${to}`);
    else if (!hasFrom) console.log(`missing   ${from} (deleted or renamed since the mapping was written)`);
    else {
      console.log(`move      ${from} → ${to}`);
      if (!dryRun) {
        mkdirSync(dirname(to), { recursive: true });
        git(['mv', from, to]);
      }
      done.set(from, to);
    }
  }
  return done;
}

function rewriteSpecifiers(moved) {
  const newToOld = new Map([...moved].map(([from, to]) => [to, from]));
  for (const file of trackedFiles(CODE)) {
    const current = dryRun ? (moved.get(file) ?? file) : file;
    const origin = dryRun ? file : (newToOld.get(file) ?? file);
    if (!existsSync(dryRun ? origin : current)) continue;
    const text = readFileSync(dryRun ? origin : current, 'utf8');
    const changes = [];
    const next = text.replace(SPECIFIER, (whole, lead, quote, spec) => {
      const rewritten = respecify(spec, origin, current, moved);
      if (rewritten === spec) return whole;
      changes.push(`${spec} → ${rewritten}`);
      return `${lead}${quote}${rewritten}${quote}`;
    });
    if (changes.length === 0) continue;
    console.log(`imports   ${current}: ${changes.join(', ')}`);
    if (!dryRun) writeFileSync(current, next);
  }
}

/** The specifier that reaches, from `current`, what `spec` reached from `origin`. */
function respecify(spec, origin, current, moved) {
  const target = posix.normalize(posix.join(posix.dirname(origin), spec));
  const asSource = target.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts');
  let dest = target;
  if (moved.has(target)) dest = moved.get(target);
  else if (moved.has(asSource))
    dest = moved
      .get(asSource)
      .replace(/\.ts$/, '.js')
      .replace(/\.mts$/, '.mjs');
  if (dest === target && origin === current) return spec;
  let out = posix.relative(posix.dirname(current), dest);
  if (!out.startsWith('.')) out = `./${out}`;
  if (spec.endsWith('/') && !out.endsWith('/')) out += '/';
  if (!resolvesOnDisk(dest, moved)) console.log(`warning   ${current}: ${out} does not resolve`);
  return out;
}

function resolvesOnDisk(path, moved) {
  if (dryRun) {
    const planned = new Set(moved.values());
    const source = path.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts');
    if (planned.has(path) || planned.has(source)) return true;
  }
  return [
    path,
    path.replace(/\.js$/, '.ts'),
    path.replace(/\.mjs$/, '.mts'),
    path.replace(/\.js$/, '.tsx'),
  ].some((p) => existsSync(p));
}

function rewriteDocs(moved) {
  if (moved.size === 0) return;
  for (const file of trackedFiles(DOCS)) {
    const text = readFileSync(file, 'utf8');
    let next = text;
    for (const [from, to] of moved) next = next.split(from).join(to);
    if (next === text) continue;
    console.log(`docs      ${file}: old test paths replaced`);
    if (!dryRun) writeFileSync(file, next);
  }
}

function reportStrays() {
  const mapped = new Set(MAPPING.map(([from]) => from));
  const strays = [];
  for (const name of readdirSync('test')) {
    const path = `test/${name}`;
    if (name.endsWith('.test.ts') && !ROOT_TESTS.has(path)) strays.push(path);
  }
  if (existsSync('test/unit')) {
    for (const name of readdirSync('test/unit')) strays.push(`test/unit/${name}`);
  }
  for (const path of strays.filter((p) => !mapped.has(p)))
    console.log(`stray     ${path}: not in the mapping; move it by hand`);
  if (strays.length === 0 && existsSync('test/unit') && !dryRun) {
    rmdirSync('test/unit');
    console.log('removed   test/unit (empty)');
  }
}

/** scripts/run-tests.mjs walks test/ recursively for *.test.ts; confirm each new folder is seen. */
function checkRunnerFindsTests() {
  const found = new Set(findTests('test'));
  const lost = MAPPING.map(([, to]) => to).filter(
    (to) => to.endsWith('.test.ts') && existsSync(to) && !found.has(to),
  );
  if (lost.length > 0) console.log(`warning   the runner's walk misses: ${lost.join(', ')}`);
  else console.log(`runner    scripts/run-tests.mjs's walk finds ${found.size} test files`);
}

function findTests(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...findTests(path));
    else if (entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

function trackedFiles(pattern) {
  const listed = git(['ls-files', '-z', '--cached', '--others', '--exclude-standard']).split('\0');
  return listed.filter(
    (f) => f && pattern.test(f) && !f.startsWith('node_modules/') && existsSync(join(root, f)),
  );
}

function git(args) {
  return execFileSync('git', args, { encoding: 'utf8' });
}
