// The peer for `npm run bench proxy`: mcp-remote, installed at bench time into .cache/peers
// (git-ignored), never vendored. Also what mcp-remote keeps on disk, so a bench can hand it a
// stored credential the way a finished `mcp-remote` login would have left one.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const PEER_PACKAGE = 'mcp-remote';
export const PEER_VERSION = '0.15.1';

const PREFIX = fileURLToPath(new URL('../.cache/peers/', import.meta.url));
const PACKAGE_DIR = join(PREFIX, 'node_modules', PEER_PACKAGE);

export type Peer = { ok: true; version: string; bin: string } | { ok: false; reason: string };

/** mcp-remote's stdio proxy entry point, installed on first use. */
export async function ensurePeer(): Promise<Peer> {
  const installed = await installedVersion();
  if (installed !== PEER_VERSION) {
    await mkdir(PREFIX, { recursive: true });
    try {
      await promisify(execFile)(
        'npm',
        [
          'install',
          '--no-save',
          '--no-audit',
          '--no-fund',
          '--prefix',
          PREFIX,
          `${PEER_PACKAGE}@${PEER_VERSION}`,
        ],
        { timeout: 180_000 },
      );
    } catch (error) {
      const detail = (error as { stderr?: string }).stderr?.trim().split('\n').slice(-2).join(' ');
      return {
        ok: false,
        reason: `npm install ${PEER_PACKAGE}@${PEER_VERSION} failed: ${detail || String(error)}`,
      };
    }
  }
  const version = await installedVersion();
  if (version !== PEER_VERSION) {
    return {
      ok: false,
      reason: `${PEER_PACKAGE} ${version ?? 'missing'} after install, wanted ${PEER_VERSION}`,
    };
  }
  return { ok: true, version, bin: join(PACKAGE_DIR, 'dist', 'proxy.js') };
}

async function installedVersion(): Promise<string | undefined> {
  try {
    const pkg = JSON.parse(await readFile(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version?: string };
    return pkg.version;
  } catch {
    return undefined;
  }
}

export interface PeerCredential {
  /** The server URL exactly as passed on mcp-remote's command line. */
  serverUrl: string;
  issuer: string;
  clientId: string;
  /** Epoch ms the token request was sent (base for expires_in). */
  requestedAt: number;
  response: {
    access_token: string;
    token_type: string;
    expires_in?: number;
    refresh_token?: string;
    scope?: string;
  };
}

/**
 * Store a credential where mcp-remote 0.15.1 looks for one (src/lib/mcp-auth-config.ts and
 * node-oauth-client-provider.ts in the installed package): `$MCP_REMOTE_CONFIG_DIR/mcp-remote-v1/`,
 * files named `<md5 of the server URL>_<name>` when no other option feeds the hash.
 * `tokens.json` is the token response plus `expires_at` (epoch ms), as its saveTokens writes it;
 * `client_info.json` is the (dynamically registered) client, here the AS's public client, with
 * the redirect URI mcp-remote derives for the URL (or it throws the registration away).
 */
export async function seedPeerCredential(configDir: string, credential: PeerCredential): Promise<void> {
  const dir = join(configDir, 'mcp-remote-v1');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const hash = createHash('md5').update(credential.serverUrl).digest('hex');
  const { response } = credential;
  const tokens = {
    ...response,
    ...(response.expires_in === undefined
      ? {}
      : { expires_at: credential.requestedAt + response.expires_in * 1000 }),
  };
  const clientInfo = {
    client_id: credential.clientId,
    // mcp-remote deletes a registration made for another redirect URI at start-up: by default
    // http://localhost:<3335 + first 4 hex digits of the hash mod 45816>/oauth/callback.
    redirect_uris: [`http://localhost:${3335 + (parseInt(hash.slice(0, 4), 16) % 45816)}/oauth/callback`],
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    client_name: 'MCP CLI Client',
    issuer: credential.issuer,
  };
  await writeFile(join(dir, `${hash}_tokens.json`), JSON.stringify(tokens, null, 2), { mode: 0o600 });
  await writeFile(join(dir, `${hash}_client_info.json`), JSON.stringify(clientInfo, null, 2), {
    mode: 0o600,
  });
}
