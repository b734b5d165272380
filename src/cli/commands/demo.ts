import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { fingerprint } from '../../redact.js';
import type * as Demo from '../../demo/index.js';
import { CredentialManager } from '../../lifecycle/manager.js';
import { createLogger } from '../../log.js';
import { createAuthFetch } from '../../mcp/auth-fetch.js';
import { createLoginHook } from '../login-hook.js';
import type { CredentialStore } from '../../store/contract.js';
import { openSqliteStore } from '../../store/sqlite.js';
import type { CliIO } from '../io.js';
import { VERSION } from '../version.js';
import { status } from './status.js';

export interface DemoOptions {
  /**
   * Sign in yourself: a browser opens, or on a machine without a display a device code is
   * shown, and the demo waits for you. Default false: the demo's own AS is approved by the
   * demo itself (it drives the login and consent pages as a browser would), because its
   * pages live on 127.0.0.1, which a phone or another computer cannot reach.
   */
  byHand: boolean;
  /** Lifetime of the demo's access tokens, in seconds. Default 5. */
  tokenSeconds: number;
}

/** The login name the automatic approval signs in with. */
const DEMO_USER = 'demo-user';

/** What the tour runs on, started by `setUp` and stopped by `tearDown`. */
interface Tour {
  readonly options: DemoOptions;
  readonly say: (text: string) => void;
  readonly as: Demo.AuthorizationServer;
  readonly mcp: Demo.McpServerHandle;
  readonly home: string;
  readonly store: Awaited<ReturnType<typeof openSqliteStore>>;
  readonly manager: CredentialManager;
}

/**
 * A tour on this machine only: a real authorization server (oidc-provider) and a real MCP
 * server (the MCP SDK) on 127.0.0.1, the same components latchkey's tests run against, and a
 * throw-away store. Login, a tool call, a silent refresh, status, and a logout that revokes.
 */
export async function demo(io: CliIO, options: DemoOptions): Promise<void> {
  const tour = await setUp(io, options);
  const step = (n: number, title: string): void => tour.say(`\n[${n}/5] ${title}`);
  try {
    step(1, 'Log in');
    await logIn(tour);
    step(2, 'Call a tool through latchkey');
    const whoami = await callTool(tour.manager, tour.mcp.url, 'whoami', {});
    tour.say(
      `  whoami -> "${whoami}" (the account you signed in as; the server checked the token with the AS)`,
    );
    step(3, 'Let the access token expire');
    const { access } = await outliveToken(tour);
    step(4, 'latchkey status');
    // On stderr with the rest of the tour, so the lines stay in order.
    await status(tour.store, { ...io, out: io.err }, { json: false });
    step(5, 'Log out, for real');
    await logOut(tour, access);
    tour.say(
      '\nDone. Next: `latchkey login <your server>`, or put `latchkey proxy <url>` in your MCP host config.',
    );
  } finally {
    await tearDown(tour);
  }
}

async function setUp(io: CliIO, options: DemoOptions): Promise<Tour> {
  const say = (text: string): void => io.err(`${text}\n`);
  // Loaded here so that no other command pays for oidc-provider.
  const harness = await import('../../demo/index.js');
  const as = await harness.startAuthorizationServer({
    accessTokenTtl: options.tokenSeconds,
    deviceFlowInterval: 1,
  });
  const mcp = await harness.startMcpServer({ authorizationServer: as });
  const home = await mkdtemp(join(tmpdir(), 'latchkey-demo-'));
  const store = await openSqliteStore({ home, env: { LATCHKEY_KEY: randomBytes(32).toString('base64') } });
  say(`latchkey ${VERSION} demo. Everything runs on this machine and is deleted at the end.`);
  say(`  authorization server  ${as.issuer}  (oidc-provider)`);
  say(`  MCP server            ${mcp.url}  (MCP SDK, tools: echo, whoami)`);
  say(`  store                 ${home}`);
  const manager = new CredentialManager({
    store,
    logger: createLogger({ level: 'error', write: (line) => io.err(`${line}\n`) }),
    acquire: createLoginHook({
      store,
      notify: io.err,
      ...(options.byHand ? {} : { openBrowser: (url: string) => approveInBrowser(harness, url, say) }),
    }),
  });
  return { options, say, as, mcp, home, store, manager };
}

async function tearDown({ manager, store, mcp, as, home }: Tour): Promise<void> {
  manager.close();
  await store.close();
  await mcp.close();
  await as.close();
  await rm(home, { recursive: true, force: true });
}

async function logIn({ options, say, as, mcp, store, manager }: Tour): Promise<void> {
  say(
    options.byHand
      ? '  A browser opens (or, with no display, a device code appears): sign in with any name\n  and any password, then allow access. The pages are on 127.0.0.1, so use a browser on\n  this machine (over SSH: ssh -L). To let the demo sign in instead: Ctrl-C, then `latchkey demo`.'
      : `  latchkey finds the AS from the server's metadata, registers itself (RFC 7591) and starts a\n  PKCE login. The demo plays your browser and signs in as "${DEMO_USER}"\n  (\`latchkey demo --by-hand\` to sign in yourself).`,
  );
  // `openid` too: the ID token is how the AS says who signed in (status's ACCOUNT column).
  const token = await manager.login(mcp.url, { scopes: [...as.scope.split(' '), 'openid'] });
  // `token.subject` is the local user the credential is kept for, not the AS account.
  const account = (await store.listCredentials({ server: mcp.url }))[0]?.account;
  say(
    `  logged in${account === undefined ? '' : ` as "${account}"`} with scopes "${token.scopes.join(' ')}"; the token lasts ${options.tokenSeconds} s.`,
  );
}

/** Wait past the token's expiry, call again, and show that a refresh (not a login) happened. */
async function outliveToken({ options, say, as, mcp, store, manager }: Tour): Promise<{ access: string }> {
  const before = await storedCredential(store, mcp.url);
  say(`  waiting ${options.tokenSeconds + 1} s ...`);
  await new Promise((r) => setTimeout(r, (options.tokenSeconds + 1) * 1000));
  const echo = await callTool(manager, mcp.url, 'echo', { text: 'still here' });
  const after = await storedCredential(store, mcp.url);
  const refreshes = as.counters.count('refresh_token', 'ok');
  say(
    `  echo -> "${echo}": no login needed; the AS saw ${refreshes} refresh request${refreshes === 1 ? '' : 's'}` +
      ' (latchkey refreshes ahead of expiry, once per token across every process).',
  );
  say(
    `  access token #${fingerprint(before.access)} became #${fingerprint(after.access)} (fingerprints, never the tokens),` +
      `\n  generation ${before.generation} -> ${after.generation}.`,
  );
  return after;
}

/** Log out, then ask the AS itself whether the last access token still works. */
async function logOut({ say, as, mcp, manager }: Tour, access: string): Promise<void> {
  const reports = await manager.logout(mcp.url);
  for (const report of reports) {
    const revoked = [
      report.revocation?.refreshToken?.status === 'revoked' ? 'refresh token' : undefined,
      report.revocation?.accessToken?.status === 'revoked' ? 'access token' : undefined,
    ].filter((t) => t !== undefined);
    say(
      `  revoked at the AS (RFC 7009): ${revoked.join(' and ') || 'nothing'}; ${report.deleted ? 'deleted locally' : 'NOT deleted'}.`,
    );
    for (const note of report.notes) say(`  note: ${note}`);
  }
  const check = await as.introspect(access);
  say(`  the AS now says the access token is ${check.active ? 'STILL ACTIVE (unexpected)' : 'inactive'}.`);
  if (check.active) throw new Error('the demo AS still accepts the access token after logout');
}

async function approveInBrowser(
  harness: typeof Demo,
  url: string,
  say: (text: string) => void,
): Promise<void> {
  say('  (browser) login page -> consent page -> redirect back to latchkey on 127.0.0.1');
  const redirect = await harness.completeAuthorization(url, { subject: DEMO_USER });
  // Deliver the redirect to latchkey's loopback listener, as the browser would.
  const response = await fetch(redirect);
  await response.body?.cancel();
}

async function callTool(
  manager: CredentialManager,
  server: string,
  name: string,
  args: Record<string, unknown>,
): Promise<string> {
  const client = new Client({ name: 'latchkey-demo', version: VERSION });
  const transport = new StreamableHTTPClientTransport(new URL(server), {
    fetch: createAuthFetch(server, { manager }),
  });
  await client.connect(transport);
  try {
    const result = await client.callTool({ name, arguments: args });
    const content = (result.content ?? []) as { type: string; text?: string }[];
    return content.map((c) => c.text ?? '').join('');
  } finally {
    await transport.terminateSession().catch(() => undefined);
    await client.close();
  }
}

async function storedCredential(
  store: CredentialStore,
  server: string,
): Promise<{ access: string; generation: number }> {
  const [cred] = await store.listCredentials({ server });
  if (cred === undefined) throw new Error('the demo credential is missing from the store');
  return { access: cred.secrets.accessToken, generation: cred.generation };
}
