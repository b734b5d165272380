// `npm run bench`: prints the figures issue 2 asks for. These are measurements, not tests;
// nothing here fails on a slow machine.
import { benchColdStart } from './cold-start.js';
import { benchCrash } from './crash.js';
import { benchHotPath } from './hot-path.js';
import { benchLogin } from './login.js';
import { benchPostgres } from './postgres.js';
import { benchScale } from './scale.js';
import { benchSdkStorm } from './sdk-storm.js';
import { benchStorm } from './storm.js';
import { keyringAvailable } from './keyring-probe.js';

function print(title: string, figures: Record<string, unknown>): void {
  console.log(`\n${title}`);
  for (const [name, value] of Object.entries(figures)) console.log(`  ${name.padEnd(52)} ${String(value)}`);
}

const only = process.argv[2];
/** `npm run bench crash -- --kills 500` (or LATCHKEY_BENCH_KILLS=500) for a tighter figure. */
function killsOption(): number | undefined {
  const flag = process.argv.indexOf('--kills');
  const text = flag >= 0 ? process.argv[flag + 1] : process.env['LATCHKEY_BENCH_KILLS'];
  const kills = Number(text);
  return Number.isSafeInteger(kills) && kills > 0 ? kills : undefined;
}

if (only === undefined || only === 'hot') {
  const hot = await benchHotPath();
  print('getAccessToken hot path (cache hit)   target: >= 500k ops/s, p99 < 20 us', hot);
}
if (only === undefined || only === 'storm') {
  const ours = await benchStorm();
  print('refresh storm: 8 processes x 25 callers, expired token, rotation on (latchkey)', ours);
  const peer = await benchSdkStorm();
  print('refresh storm, peer: MCP SDK 1.x refreshAuthorization per 401, same setup', peer);
  print('refresh storm ratio (peer / latchkey)', {
    refreshRequests: `${peer.refreshRequests} / ${ours.refreshRequestsPerRound} = ${(peer.refreshRequests / Math.max(1, ours.refreshRequestsPerRound)).toFixed(0)}x`,
    callersWithoutToken: `${peer.callersFailed} / ${ours.callerErrors}`,
  });
}
if (only === undefined || only === 'login') {
  for (const [flow, figures] of Object.entries(await benchLogin())) {
    print(
      `login to stored credential: ${flow} (headless driver as the user; device time includes the AS poll interval)`,
      figures,
    );
  }
}
if (only === undefined || only === 'cold') {
  print('cold process, time to first token (LATCHKEY_KEY)', await benchColdStart({ keySource: 'env' }));
  if (await keyringAvailable()) {
    print('cold process, time to first token (OS keyring)', await benchColdStart({ keySource: 'keyring' }));
  } else {
    console.log(
      '\ncold process (OS keyring): skipped, no Secret Service in this session (run under `npm test`-style dbus session)',
    );
  }
}
if (only === undefined || only === 'postgres') {
  print('PostgreSQL store: two instances on one database   target: watch < 100 ms', await benchPostgres());
}
if (only === undefined || only === 'dpop') {
  const { benchDPoP } = await import('./dpop.js');
  print('DPoP proof per MCP request (ES256, node:crypto), one core', benchDPoP());
}
if (only === undefined || only === 'proxy') {
  // Installs the peer (mcp-remote 0.15.1) into .cache/peers on first use; about a minute.
  const { benchProxy } = await import('./proxy.js');
  const quick = process.argv.includes('--quick');
  const dpop = process.argv.includes('--dpop');
  for (const [title, figures] of await benchProxy({ quick, dpop })) print(title, figures);
}
// Only on request (a few minutes): the fleet refresher on PostgreSQL (issue 16). `--quick`
// shrinks it and skips the scale figures; `--cpu-prof-dir DIR` profiles the refreshers;
// `--throughput-only` stops after the throughput figures (with `--quick`, about 30 s).
if (only === 'fleet') {
  const { benchFleet } = await import('./fleet.js');
  const quick = process.argv.includes('--quick');
  const throughputOnly = process.argv.includes('--throughput-only');
  const prof = process.argv.indexOf('--cpu-prof-dir');
  const cpuProfDir = prof >= 0 ? process.argv[prof + 1] : undefined;
  for (const [title, figures] of await benchFleet(
    cpuProfDir === undefined ? { quick, throughputOnly } : { quick, throughputOnly, cpuProfDir },
  ))
    print(title, figures);
}
// Only on request (several minutes): memory of one instance with 10k and 100k credentials.
if (
  only === 'scale' ||
  (only === 'fleet' && !process.argv.includes('--quick') && !process.argv.includes('--throughput-only'))
) {
  print(
    'one instance, many subjects: SQLite store + one manager (maxCachedCredentials 10 000), target < 200 MB RSS at 100k',
    await benchScale(),
  );
}
// Only on request (about a minute): latchkey serve's token API and memory (issue 17).
if (only === 'serve') {
  const { benchServeMemory, benchServeTokens } = await import('./serve.js');
  print(
    'latchkey serve: token API on a cache hit, open-loop load (goal p99 < 5 ms at 2,000 req/s)',
    await benchServeTokens(),
  );
  print(
    'latchkey serve: RSS of one instance, SQLite store, users connected and served',
    await benchServeMemory(),
  );
  // The MCP endpoint against a direct SDK client, in the same run.
  const { benchServeMcp } = await import('./serve-mcp.js');
  for (const [title, figures] of await benchServeMcp()) print(title, figures);
}
// Only on request: it kills processes on purpose, and its figure needs many kills to be tight.
if (only === 'crash') {
  const kills = killsOption();
  print(
    'kill -9 during a refresh (rotation on): kills per lost credential',
    await benchCrash(kills === undefined ? {} : { kills }),
  );
}
