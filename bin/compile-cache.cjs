'use strict';
// Load the CLI bundle with a V8 code cache, so a start skips compiling what the last start
// compiled. A host spawns `latchkey proxy` on every launch; on Node 20 (which has no
// module.enableCompileCache) compiling the ~770 kB bundle was ~20 ms of that start
// (docs/proxy.md, "Speed").
//
// The cache holds bytecode of latchkey's own source, never data: no token, key or argument
// reaches it. It lives in the user's cache directory (0700, the file 0600), one file per command,
// named by the Node version and the bundle's size and modification time, because V8 checks a
// cache against the source's length only; a rebuilt bundle gets new names, old ones are removed.
// Anything that goes wrong (no cache directory, a damaged or foreign file) falls back to a
// plain require, which is what ran before. LATCHKEY_NO_COMPILE_CACHE=1 turns it off.
//
// A script run from a code cache cannot import() on Node 20 (the callback is lost), so the
// bundle has no import() but one (scripts/bundle-cli.mjs checks): oidc-provider's, for the
// demo, which therefore starts without the cache.
const fs = require('node:fs');
const Module = require('node:module');
const os = require('node:os');
const path = require('node:path');
const vm = require('node:vm');

/** Milliseconds after start at which a long-running command (the proxy) writes its cache. */
const WRITE_AFTER_MS = 1000;

/** Commands that import() an ES module (oidc-provider), which a cached script cannot. */
const UNCACHED_COMMANDS = new Set(['demo']);

/** Commands with a cache file of their own; any other command line shares `other`. */
const KNOWN_COMMANDS = new Set([
  'status',
  'doctor',
  'events',
  'token',
  'login',
  'logout',
  'reset',
  'store',
  'proxy',
  'tools',
  'call',
  'reconnect',
  'refresher',
  'serve',
]);

function cacheDirectory(env) {
  if (process.platform === 'darwin') return path.join(os.homedir(), 'Library', 'Caches', 'latchkey');
  if (process.platform === 'win32') {
    return path.join(env.LOCALAPPDATA || path.join(os.homedir(), 'AppData', 'Local'), 'latchkey', 'Cache');
  }
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'latchkey');
}

/**
 * The bundle's identity (V8 checks a cache against the source's length only), and the command:
 * each command's start compiles other functions, so each keeps its own cache.
 */
/**
 * The command a command line runs: its first word that is not an option, past the global
 * `--store <url>`. Anything else (a typo, a URL) shares the name `other`.
 */
function commandOf(argv) {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--store') i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

function cacheNames(bundle, command) {
  const { size, mtimeMs } = fs.statSync(bundle);
  const build = `v8-${process.version}-${process.arch}-${size}-${Math.trunc(mtimeMs)}-`;
  const which = KNOWN_COMMANDS.has(command) ? command : 'other';
  return { build, name: `${build}${which}.bin` };
}

/** Write atomically, and drop the caches of earlier bundles or Node versions. */
function writeCache(dir, { build, name }, data) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temporary = path.join(dir, `.${name}.${process.pid}`);
  fs.writeFileSync(temporary, data, { mode: 0o600 });
  fs.renameSync(temporary, path.join(dir, name));
  for (const other of fs.readdirSync(dir)) {
    if (!other.startsWith(build) && /^v8-.*\.bin$/.test(other))
      fs.rmSync(path.join(dir, other), { force: true });
  }
}

function readCache(file) {
  try {
    return fs.readFileSync(file);
  } catch {
    return undefined;
  }
}

/** The bundle compiled with the cache, or undefined where that cannot be done. */
function compileCached(bundle, command, env) {
  if (env.LATCHKEY_NO_COMPILE_CACHE === '1' || UNCACHED_COMMANDS.has(command)) return undefined;
  try {
    const dir = cacheDirectory(env);
    const names = cacheNames(bundle, command);
    const cached = readCache(path.join(dir, names.name));
    const script = new vm.Script(Module.wrap(fs.readFileSync(bundle, 'utf8')), {
      filename: bundle,
      cachedData: cached,
    });
    const stale = cached === undefined || script.cachedDataRejected === true;
    return { script, save: stale ? () => writeCache(dir, names, script.createCachedData()) : undefined };
  } catch {
    return undefined;
  }
}

/** Run a compiled bundle as the CommonJS module it was built as; returns its exports. */
function run(script, bundle) {
  const module = new Module(bundle, null);
  module.filename = bundle;
  module.paths = Module._nodeModulePaths(path.dirname(bundle));
  const dirname = path.dirname(bundle);
  script
    .runInThisContext()
    .call(module.exports, module.exports, Module.createRequire(bundle), module, bundle, dirname);
  module.loaded = true;
  return module.exports;
}

/**
 * The CLI bundle's exports, and `flush` to call when the command is done: a new cache is
 * written then, or after WRITE_AFTER_MS for a command that runs on (the proxy), so that it
 * also holds the functions the command compiled as it ran.
 */
function loadBundle(bundle, argv, env = process.env) {
  const compiled = compileCached(bundle, commandOf(argv), env);
  if (compiled === undefined) return { exports: require(bundle), flush: () => undefined };
  const exports = run(compiled.script, bundle);
  let save = compiled.save;
  const flush = () => {
    const now = save;
    save = undefined;
    try {
      if (now !== undefined) now();
    } catch {
      // A read-only or missing home: the next start compiles again, nothing worse.
    }
  };
  if (save !== undefined) setTimeout(flush, WRITE_AFTER_MS).unref();
  return { exports, flush };
}

module.exports = { loadBundle };
