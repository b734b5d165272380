/**
 * `doctor` and `login` reach the same verdict on every server in the suite: doctor passes
 * (no `fail` finding) exactly when a login succeeds, and where both fail, doctor's finding
 * shows the login's error message word for word. Servers from other suites (third-party
 * authorization servers) can be added to the table as they arrive.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { diagnose } from '../../src/cli/commands/doctor.js';
import { cliMessage } from '../../src/cli/next-step.js';
import { isLatchkeyError } from '../../src/errors.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { createLoginHook, type LoginOptions } from '../../src/login/login.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  completeAuthorization,
  startAuthorizationServer,
  startLegacySseMcpServer,
  startMcpServer,
  type TestAuthorizationServer,
} from '../harness/index.js';
import { startQuirkyResourceServer } from '../harness/quirky-resource-server.js';

const browser: NonNullable<LoginOptions['openBrowser']> = async (url) => {
  await fetch(await completeAuthorization(url, { subject: 'alice' }));
};

interface Subject {
  name: string;
  /** Starts the server; returns its URL and how to stop it. */
  start(as: TestAuthorizationServer): Promise<{ url: string; close(): Promise<void> }>;
  /** Whether a login should succeed (and so doctor pass). */
  works: boolean;
}

const SUBJECTS: Subject[] = [
  {
    name: 'SDK server, PRM path-inserted',
    works: true,
    start: (as) => startMcpServer({ authorizationServer: as }),
  },
  {
    name: 'SDK server speaking 2026-07-28 only',
    works: true,
    start: (as) => startMcpServer({ authorizationServer: as, modernOnly: true, path: '/modern' }),
  },
  {
    name: 'legacy HTTP+SSE server',
    works: true,
    start: (as) => startLegacySseMcpServer({ authorizationServer: as }),
  },
  {
    name: 'PRM only at the challenge URL, AS on another origin',
    works: true,
    start: (as) => startQuirkyResourceServer({ authorizationServer: as, scopesSupported: ['mcp:tools'] }),
  },
  {
    name: 'PRM resource is the origin (better-auth)',
    works: true,
    start: (as) =>
      startQuirkyResourceServer({
        authorizationServer: as,
        resource: 'origin',
        scopesSupported: ['mcp:tools'],
      }),
  },
  {
    name: 'PRM resource is a parent path',
    works: true,
    start: (as) =>
      startQuirkyResourceServer({
        authorizationServer: as,
        resource: { path: '/' },
        challengeScope: 'mcp:tools',
      }),
  },
  {
    name: 'PRM resource is a sibling path',
    works: false,
    start: (as) =>
      startQuirkyResourceServer({
        authorizationServer: as,
        resource: { path: '/other/mcp' },
        challengeScope: 'mcp:tools',
      }),
  },
];

describe('doctor and login agree on every server in the suite', () => {
  let as: TestAuthorizationServer;
  let home: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300 });
    home = await mkdtemp(join(tmpdir(), 'latchkey-agree-'));
    env = { LATCHKEY_HOME: home, LATCHKEY_KEY: randomBytes(32).toString('base64') };
  });
  after(async () => {
    await as.close();
    await rm(home, { recursive: true, force: true });
  });

  for (const subject of SUBJECTS) {
    it(`${subject.name}: ${subject.works ? 'both pass' : 'both fail, in the same words'}`, async () => {
      const server = await subject.start(as);
      const store = createMemoryStore();
      const manager = new CredentialManager({
        store,
        logger: silentLogger,
        acquire: createLoginHook({ store, flow: 'browser', openBrowser: browser, timeoutMs: 60_000 }),
      });
      try {
        const findings = await diagnose(server.url, env);
        const failures = findings.filter((f) => f.verdict === 'fail');
        const login = await manager.login(server.url).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.equal(failures.length === 0, login === undefined, 'doctor passes exactly when login works');
        assert.equal(login === undefined, subject.works, JSON.stringify({ failures, login: String(login) }));
        if (login !== undefined) {
          assert.ok(isLatchkeyError(login));
          assert.deepEqual(
            failures.map((f) => f.detail),
            [cliMessage(login)],
            "doctor's finding is the login's error message",
          );
        }
      } finally {
        manager.close();
        await server.close();
      }
    });
  }
});
