import { existsSync } from 'node:fs';

import { canonicalServer } from '../../credential/key.js';
import { isLatchkeyError } from '../../errors.js';
import { MESSAGE_MAX, networkText } from '../../network-text.js';
import { probeChallenge } from '../../oauth/challenge-probe.js';
import { discoverServer } from '../../oauth/discovery.js';
import { describeResource, fetchResourceMetadata } from '../../oauth/resource-metadata.js';
import { selectScopes } from '../../oauth/scope.js';
import type { BearerChallenge, ServerDiscovery } from '../../oauth/types.js';
import type { CredentialStore } from '../../store/contract.js';
import { createMemoryStore } from '../../store/memory.js';
import { keyRotationStatus } from '../../store/rekey.js';
import { INSECURE_KEY_WARNING, keyringAccount } from '../../store/data-key.js';
import { keyringSlot } from '../../store/keyring.js';
import { openStore, storeTarget } from '../../store/open.js';
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

/**
 * What the checks learn as they go: the challenge a login would start from, then the
 * authorization server the discovery chain picks. Each step reads what earlier ones set.
 */
interface Checkup {
  readonly server: string;
  readonly env: NodeJS.ProcessEnv;
  challenge?: BearerChallenge | undefined;
  discovered?: ServerDiscovery;
}

/** One check's findings, and whether the checks after it still make sense. */
interface StepResult {
  findings: Finding[];
  stop?: boolean;
}

type Step = (checkup: Checkup) => Promise<StepResult> | StepResult;

/**
 * The checks in the order a login meets them: the server, its resource metadata, the
 * authorization server and what it offers, then where the credential would be kept.
 */
const STEPS: readonly Step[] = [
  serverStep,
  resourceMetadataStep,
  authorizationServerStep,
  (c) => one(scopesFinding(c)),
  (c) => one(pkceFinding(metadataOf(c))),
  (c) => one(registrationFinding(metadataOf(c))),
  (c) => one(revocationFinding(metadataOf(c))),
  (c) => one(refreshFinding(metadataOf(c))),
  async (c) => one(await storeFinding(c.env)),
];

/** A check with one finding, after which the next checks still run. */
function one(finding: Finding): StepResult {
  return { findings: [finding] };
}

export async function diagnose(server: string, env: NodeJS.ProcessEnv): Promise<Finding[]> {
  const findings: Finding[] = [];
  const checkup: Checkup = { server, env };
  for (const step of STEPS) {
    const result = await step(checkup);
    // Details quote the server's metadata and challenges: made safe for the terminal and scripts.
    for (const f of result.findings)
      findings.push({ ...f, detail: networkText(f.detail, { maxLength: MESSAGE_MAX }) });
    if (result.stop === true) break;
  }
  return findings;
}

/**
 * The server itself: does it challenge, and does its clock agree with ours? The same probe a
 * login starts from, so both follow the same resource_metadata and scope.
 */
async function serverStep(checkup: Checkup): Promise<StepResult> {
  let probe: Awaited<ReturnType<typeof probeChallenge>>;
  try {
    probe = await probeChallenge(checkup.server);
  } catch (error) {
    const fix = 'check the URL and your network';
    return {
      findings: [{ check: 'server reachable', verdict: 'fail', detail: message(error), fix }],
      stop: true,
    };
  }
  if (probe.status !== 401) {
    const finding: Finding = {
      check: 'server challenge',
      verdict: 'warn',
      detail: `answered ${probe.status} without a token (expected 401)`,
      fix: 'the server may not require OAuth at all',
    };
    return { findings: [finding, clockFinding(probe.date, probe.sentAt)] };
  }
  const challenge = probe.challenge;
  checkup.challenge = challenge;
  const url = challenge?.resourceMetadata;
  const named =
    url === undefined ? 'a Bearer challenge without resource_metadata' : `resource_metadata ${url}`;
  const scope = challenge?.scope === undefined ? '' : `, scope ${challenge.scope.join(' ')}`;
  return {
    findings: [
      { check: 'server challenge', verdict: 'ok', detail: `401 with ${named}${scope}` },
      clockFinding(probe.date, probe.sentAt),
    ],
  };
}

/**
 * Protected resource metadata (RFC 9728), judged by the function discovery uses. A failure's
 * detail is the login's error message, word for word (next step included).
 */
async function resourceMetadataStep({ server, challenge }: Checkup): Promise<StepResult> {
  const check = 'protected resource metadata';
  try {
    const prm = await fetchResourceMetadata(server, {
      server,
      resourceMetadataUrl: challenge?.resourceMetadata,
    });
    if (prm.kind !== 'found') {
      const fix = 'the server predates RFC 9728; latchkey will try its origin as the authorization server';
      return { findings: [{ check, verdict: 'warn', detail: `none at ${prm.tried.join(', ')}`, fix }] };
    }
    const names = `${prm.metadata.authorizationServers.join(', ')} for ${describeResource(prm.metadata, server)}`;
    return { findings: [{ check, verdict: 'ok', detail: `${prm.url} names ${names}` }] };
  } catch (error) {
    return { findings: [{ check, verdict: 'fail', detail: message(error) }], stop: true };
  }
}

/**
 * The authorization server a login would use: the whole discovery chain a login runs (issuer
 * choice, metadata validation), against a throwaway store so nothing is kept.
 */
async function authorizationServerStep(checkup: Checkup): Promise<StepResult> {
  const check = 'authorization server metadata';
  try {
    const store = createMemoryStore();
    checkup.discovered = await discoverServer(checkup.server, {
      store,
      challenge: checkup.challenge,
      maxAgeMs: 0,
    });
  } catch (error) {
    return { findings: [{ check, verdict: 'fail', detail: message(error) }], stop: true };
  }
  return { findings: [{ check, verdict: 'ok', detail: `issuer ${String(metadataOf(checkup)['issuer'])}` }] };
}

/** The authorization server's metadata, once the discovery step has found it. */
function metadataOf(checkup: Checkup): Record<string, unknown> {
  if (checkup.discovered === undefined) throw new Error('doctor: a check ran before discovery');
  return checkup.discovered.authorizationServer as unknown as Record<string, unknown>;
}

/** The scopes a login without --scope would ask for, chosen by the login's own rule. */
function scopesFinding(checkup: Checkup): Finding {
  const scopes = selectScopes({
    challenge: checkup.challenge,
    scopesSupported: checkup.discovered?.scopesSupported,
  });
  const detail =
    scopes === undefined
      ? "none requested (the authorization server's default applies)"
      : `a login requests ${scopes.join(' ')}`;
  return { check: 'scopes', verdict: 'ok', detail };
}

function pkceFinding(as: Record<string, unknown>): Finding {
  return supports(as['code_challenge_methods_supported'], 'S256')
    ? { check: 'PKCE', verdict: 'ok', detail: 'S256 advertised' }
    : {
        check: 'PKCE',
        verdict: 'fail',
        detail: 'S256 not advertised',
        fix: 'latchkey refuses to log in without PKCE S256 (MCP AUTH-45)',
      };
}

function revocationFinding(as: Record<string, unknown>): Finding {
  return as['revocation_endpoint'] !== undefined
    ? { check: 'revocation', verdict: 'ok', detail: String(as['revocation_endpoint']) }
    : {
        check: 'revocation',
        verdict: 'warn',
        detail: 'no revocation_endpoint',
        fix: 'logout can only delete tokens locally; they stay valid at the server until they expire',
      };
}

function refreshFinding(as: Record<string, unknown>): Finding {
  const grants = as['grant_types_supported'];
  if (grants !== undefined && !supports(grants, 'refresh_token')) {
    return {
      check: 'refresh tokens',
      verdict: 'warn',
      detail: 'refresh_token grant not supported',
      fix: 'expect a new login every time the access token expires',
    };
  }
  const detail =
    grants === undefined
      ? 'grant_types_supported not listed (the default includes refresh_token)'
      : 'refresh_token grant supported';
  return { check: 'refresh tokens', verdict: 'ok', detail };
}

/** The store, opened only if it exists: doctor is read-only and must not create one. */
async function storeFinding(env: NodeJS.ProcessEnv): Promise<Finding> {
  const target = storeTarget(undefined, { env });
  if (target.kind === 'sqlite' && !existsSync(target.path))
    return newStoreFinding(env, target.path, target.home);
  try {
    const store = await openStore(undefined, { env });
    const rotation = await unfinishedRotation(store).finally(() => store.close());
    if (rotation !== undefined) return rotation;
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

/** A key rotation left half done (killed, or a KEK change waiting for its second run). */
async function unfinishedRotation(store: CredentialStore): Promise<Finding | undefined> {
  const status = await keyRotationStatus(store);
  if (status.dataKeys.length <= 1 && status.keyEncryptionKeys.length <= 1) return undefined;
  return {
    check: 'store',
    verdict: 'warn',
    detail:
      `${store.security.location}: a key rotation is unfinished ` +
      `(${status.dataKeys.length} data keys, ${status.keyEncryptionKeys.length} key-encryption keys)`,
    fix: 'latchkey store rekey --resume (after a key-encryption key change: once every process has the new key, run with it)',
  };
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
