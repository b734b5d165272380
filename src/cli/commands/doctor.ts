import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { canonicalServer } from '../../credential/key.js';
import { isLatchkeyError } from '../../errors.js';
import { MESSAGE_MAX, networkText } from '../../network-text.js';
import { probeChallenge } from '../../oauth/challenge-probe.js';
import { discoverServer } from '../../oauth/discovery.js';
import { describeResource, fetchResourceMetadata } from '../../oauth/resource-metadata.js';
import { selectScopes } from '../../oauth/scope.js';
import type { BearerChallenge, ServerDiscovery } from '../../oauth/types.js';
import { createMemoryStore } from '../../store/memory.js';
import { INSECURE_KEY_WARNING, keyringAccount } from '../../store/data-key.js';
import { keyringSlot } from '../../store/keyring.js';
import { defaultHome } from '../../store/paths.js';
import { openSqliteStore } from '../../store/sqlite.js';
import { DB_FILE_NAME } from '../open-store.js';
import type { CliIO } from '../io.js';
import { cliMessage, renderNextStep } from '../next-step.js';

export type Verdict = 'ok' | 'warn' | 'fail';

export interface Finding {
  check: string;
  verdict: Verdict;
  detail: string;
  /** What to do about a warn or fail. */
  fix?: string;
}

/**
 * Walk the discovery chain step by step and explain each finding, so a user can see where a
 * login would go wrong before it does. Read-only: nothing is registered or stored.
 */
export async function doctor(io: CliIO, server: string, options: { json: boolean }): Promise<boolean> {
  const findings = await diagnose(canonicalServer(server), io.env);
  if (options.json) io.out(JSON.stringify({ server: canonicalServer(server), findings }, null, 2) + '\n');
  else
    for (const f of findings)
      io.out(
        `${f.verdict.padEnd(4)}  ${f.check}: ${f.detail}${f.fix === undefined ? '' : `\n      fix: ${f.fix}`}\n`,
      );
  return findings.every((f) => f.verdict !== 'fail');
}

export async function diagnose(server: string, env: NodeJS.ProcessEnv): Promise<Finding[]> {
  const findings: Finding[] = [];
  // Details quote the server's metadata and challenges: made safe for the terminal and scripts.
  const add = (f: Finding): void =>
    void findings.push({ ...f, detail: networkText(f.detail, { maxLength: MESSAGE_MAX }) });

  // 1. The server itself: does it challenge, and does its clock agree with ours? The same
  // probe a login starts from, so both follow the same resource_metadata and scope.
  let challenge: BearerChallenge | undefined;
  try {
    const probe = await probeChallenge(server);
    if (probe.status === 401) challenge = probe.challenge;
    const challengeUrl = challenge?.resourceMetadata;
    add(
      probe.status === 401
        ? {
            check: 'server challenge',
            verdict: 'ok',
            detail: `401 with ${challengeUrl === undefined ? 'a Bearer challenge without resource_metadata' : `resource_metadata ${challengeUrl}`}${challenge?.scope === undefined ? '' : `, scope ${challenge.scope.join(' ')}`}`,
          }
        : {
            check: 'server challenge',
            verdict: 'warn',
            detail: `answered ${probe.status} without a token (expected 401)`,
            fix: 'the server may not require OAuth at all',
          },
    );
    add(clockFinding(probe.date, probe.sentAt));
  } catch (error) {
    add({
      check: 'server reachable',
      verdict: 'fail',
      detail: message(error),
      fix: `check the URL and your network`,
    });
    return findings;
  }

  // 2. Protected resource metadata (RFC 9728), judged by the function discovery uses. A
  // failure's detail is the login's error message, word for word (next step included).
  try {
    const prm = await fetchResourceMetadata(server, {
      server,
      resourceMetadataUrl: challenge?.resourceMetadata,
    });
    add(
      prm.kind === 'found'
        ? {
            check: 'protected resource metadata',
            verdict: 'ok',
            detail: `${prm.url} names ${prm.metadata.authorizationServers.join(', ')} for ${describeResource(prm.metadata, server)}`,
          }
        : {
            check: 'protected resource metadata',
            verdict: 'warn',
            detail: `none at ${prm.tried.join(', ')}`,
            fix: 'the server predates RFC 9728; latchkey will try its origin as the authorization server',
          },
    );
  } catch (error) {
    add({ check: 'protected resource metadata', verdict: 'fail', detail: message(error) });
    return findings;
  }

  // 3. The authorization server a login would use: the whole discovery chain a login runs
  // (issuer choice, metadata validation), against a throwaway store so nothing is kept.
  let discovered: ServerDiscovery;
  try {
    discovered = await discoverServer(server, { store: createMemoryStore(), challenge, maxAgeMs: 0 });
  } catch (error) {
    add({ check: 'authorization server metadata', verdict: 'fail', detail: message(error) });
    return findings;
  }
  const as = discovered.authorizationServer as unknown as Record<string, unknown>;
  add({ check: 'authorization server metadata', verdict: 'ok', detail: `issuer ${String(as['issuer'])}` });
  // The scopes a login without --scope would ask for, chosen by the login's own rule.
  const scopes = selectScopes({ challenge, scopesSupported: discovered.scopesSupported });
  add({
    check: 'scopes',
    verdict: 'ok',
    detail:
      scopes === undefined
        ? "none requested (the authorization server's default applies)"
        : `a login requests ${scopes.join(' ')}`,
  });
  add(
    supports(as['code_challenge_methods_supported'], 'S256')
      ? { check: 'PKCE', verdict: 'ok', detail: 'S256 advertised' }
      : {
          check: 'PKCE',
          verdict: 'fail',
          detail: 'S256 not advertised',
          fix: 'latchkey refuses to log in without PKCE S256 (MCP AUTH-45)',
        },
  );
  add(registrationFinding(as));
  add(
    as['revocation_endpoint'] !== undefined
      ? { check: 'revocation', verdict: 'ok', detail: String(as['revocation_endpoint']) }
      : {
          check: 'revocation',
          verdict: 'warn',
          detail: 'no revocation_endpoint',
          fix: 'logout can only delete tokens locally; they stay valid at the server until they expire',
        },
  );
  const grants = as['grant_types_supported'];
  add(
    grants === undefined || supports(grants, 'refresh_token')
      ? {
          check: 'refresh tokens',
          verdict: 'ok',
          detail:
            grants === undefined
              ? 'grant_types_supported not listed (the default includes refresh_token)'
              : 'refresh_token grant supported',
        }
      : {
          check: 'refresh tokens',
          verdict: 'warn',
          detail: 'refresh_token grant not supported',
          fix: 'expect a new login every time the access token expires',
        },
  );

  // 4. Where latchkey would keep the credential.
  add(await storeFinding(env));
  return findings;
}

/** The store, opened only if it exists: doctor is read-only and must not create one. */
async function storeFinding(env: NodeJS.ProcessEnv): Promise<Finding> {
  const home = defaultHome(env);
  const path = join(home, DB_FILE_NAME);
  if (!existsSync(path)) return newStoreFinding(env, path, home);
  try {
    const store = await openSqliteStore({ env });
    await store.close();
    return store.security.insecure
      ? {
          check: 'store',
          verdict: 'warn',
          detail: `${store.security.location}, key in a file`,
          fix: store.security.warning ?? 'install a keyring',
        }
      : {
          check: 'store',
          verdict: 'ok',
          detail: `${store.security.location}, key from ${store.security.keySource}`,
        };
  } catch (error) {
    return {
      check: 'store',
      verdict: 'fail',
      detail: message(error),
      ...(isLatchkeyError(error) && error.next !== undefined ? { fix: renderNextStep(error.next) } : {}),
    };
  }
}

/** Where a first login would keep its key, found by reading the keyring only. */
async function newStoreFinding(env: NodeJS.ProcessEnv, path: string, home: string): Promise<Finding> {
  const detail = `${path} (not created yet)`;
  const key = env['LATCHKEY_KEY'];
  if (key !== undefined && key !== '')
    return { check: 'store', verdict: 'ok', detail: `${detail}, key from env` };
  try {
    await (await keyringSlot(keyringAccount(home))).get();
    return { check: 'store', verdict: 'ok', detail: `${detail}, key will go in the OS keyring` };
  } catch {
    return {
      check: 'store',
      verdict: 'warn',
      detail: `${detail}, key would go in a file`,
      fix: INSECURE_KEY_WARNING,
    };
  }
}

function registrationFinding(as: Record<string, unknown>): Finding {
  if (as['client_id_metadata_document_supported'] === true)
    return { check: 'registration', verdict: 'ok', detail: 'client ID metadata documents supported' };
  if (typeof as['registration_endpoint'] === 'string')
    return { check: 'registration', verdict: 'ok', detail: 'dynamic client registration' };
  return {
    check: 'registration',
    verdict: 'warn',
    detail: 'neither CIMD nor dynamic registration',
    fix: 'register a client at the authorization server and pass --client-id',
  };
}

function clockFinding(date: string | null, sentAt: number): Finding {
  const at = date === null ? NaN : Date.parse(date);
  if (Number.isNaN(at))
    return { check: 'clock', verdict: 'warn', detail: 'the server sent no Date header; skew unknown' };
  const skewS = Math.round((at - sentAt) / 1000);
  return Math.abs(skewS) <= 30
    ? { check: 'clock', verdict: 'ok', detail: `within ${Math.abs(skewS)} s of the server` }
    : {
        check: 'clock',
        verdict: 'warn',
        detail: `${skewS} s off the server's clock`,
        fix: 'sync your clock (NTP); expiry checks depend on it',
      };
}

function supports(list: unknown, value: string): boolean {
  return Array.isArray(list) && list.includes(value);
}

/** Word for word what the failing command would print, next step included. */
function message(error: unknown): string {
  return cliMessage(error);
}
