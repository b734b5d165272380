import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type * as oauth from 'oauth4webapi';

import { isLatchkeyError, type LatchkeyError } from '../../src/errors.js';
import type { ClientContext } from '../../src/oauth/client-context.js';
import {
  DEFAULT_POLL_INTERVAL_MS,
  deviceAuthorization,
  type DeviceAuthorizationOptions,
  SLOW_DOWN_STEP_MS,
} from '../../src/login/device-authorization.js';
import { renderDevicePrompt, stderrDevicePrompt } from '../../src/login/device-prompt.js';
import type { DevicePrompt } from '../../src/oauth/types.js';
import {
  approveDevice,
  CookieJar,
  discover,
  type FaultProxy,
  startAuthorizationServer,
  startFaultProxy,
  type TestAuthorizationServer,
} from '../harness/index.js';
import { publicClientContext } from '../support/public-client.js';
import { findForm } from '../../src/demo/html-form.js';

const SERVER = 'http://127.0.0.1:9/mcp';

/** Refuse a device authorization as the user would: enter the code, then press Abort. */
async function denyDevice(verificationUri: string, userCode: string): Promise<void> {
  const jar = new CookieJar();
  const load = async (url: URL, body?: URLSearchParams): Promise<string> => {
    const headers: Record<string, string> = { accept: 'text/html' };
    const cookie = jar.header();
    if (cookie !== undefined) headers['cookie'] = cookie;
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(url, {
      method: body === undefined ? 'GET' : 'POST',
      headers,
      redirect: 'manual',
      ...(body === undefined ? {} : { body }),
    });
    jar.store(response);
    return response.text();
  };
  const submit = (html: string, page: URL, values: Record<string, string>): Promise<string> => {
    const form = findForm(html);
    if (form === undefined) throw new Error(`no form at ${page.href}`);
    const fields = new URLSearchParams();
    for (const input of form.inputs) fields.append(input.name, values[input.name] ?? input.value);
    for (const [name, value] of Object.entries(values)) if (!fields.has(name)) fields.append(name, value);
    return load(new URL(form.action || page.href, page), fields);
  };
  const page = new URL(verificationUri);
  const confirm = await submit(await load(page), page, { user_code: userCode });
  // oidc-provider marks the device code access_denied and shows the code input page again.
  await submit(confirm, page, { abort: 'yes' });
}

describe('device authorization (RFC 8628) against a real AS', () => {
  let proxy: FaultProxy;
  let as: TestAuthorizationServer;
  let metadata: oauth.AuthorizationServer;
  let ctx: ClientContext;

  before(async () => {
    proxy = await startFaultProxy();
    as = await startAuthorizationServer({ frontedBy: proxy, accessTokenTtl: 300, resources: [SERVER] });
    metadata = await discover(as.issuer);
    ctx = publicClientContext(metadata, as.clientId);
  });
  after(async () => {
    await as.close();
    await proxy.close();
  });

  /** Records every wait the flow asks for, and waits at most `capMs` of it. */
  function recordingSleep(capMs = Infinity): {
    waits: number[];
    sleep: NonNullable<DeviceAuthorizationOptions['sleep']>;
  } {
    const waits: number[] = [];
    return {
      waits,
      sleep: (ms) => {
        waits.push(ms);
        return new Promise((resolve) => setTimeout(resolve, Math.min(ms, capMs)));
      },
    };
  }

  /**
   * The user approving on another device as soon as the prompt appears. If the approval
   * fails, polling is aborted so nothing keeps running after the test, and the approval's
   * own error is what the test reports.
   */
  function approving(subject: string): {
    signal: AbortSignal;
    prompt: (p: DevicePrompt) => void;
    run: <T>(flow: Promise<T>) => Promise<T>;
    shown: () => DevicePrompt | undefined;
  } {
    const controller = new AbortController();
    let approval: Promise<void> = Promise.resolve();
    let shown: DevicePrompt | undefined;
    return {
      signal: controller.signal,
      prompt: (p) => {
        shown = p;
        approval = approveDevice(p.verificationUri, p.userCode, { subject });
        approval.catch(() => controller.abort());
      },
      run: async (flow) => {
        try {
          return await flow;
        } finally {
          await approval;
        }
      },
      shown: () => shown,
    };
  }

  async function rejection(promise: Promise<unknown>): Promise<LatchkeyError> {
    try {
      await promise;
    } catch (error) {
      assert.ok(isLatchkeyError(error), String(error));
      return error;
    }
    assert.fail('expected a rejection');
  }

  it('approval on another device: tokens for the user, bound to the resource, at the AS interval', async () => {
    as.counters.reset();
    const { waits, sleep } = recordingSleep();
    const user = approving('dora');
    const started = Date.now();
    const result = await user.run(
      deviceAuthorization({ ctx, resource: SERVER, scope: as.scope, sleep, ...user }),
    );
    const prompt = user.shown();
    assert.ok(prompt !== undefined);
    assert.ok(prompt.verificationUri.startsWith(as.issuer));
    assert.ok(prompt.verificationUriComplete?.includes(encodeURIComponent(prompt.userCode).slice(0, 4)));
    assert.ok(Math.abs(prompt.expiresAt - (started + 600_000)) < 5_000, 'expires_in 600 s');
    assert.ok(
      waits.every((w) => w === 1000),
      `the AS's interval=1 is honoured: ${JSON.stringify(waits)}`,
    );
    assert.ok(result.response.refresh_token, 'refresh token issued');
    const info = await as.introspect(result.response.access_token);
    assert.equal(info.sub, 'dora');
    assert.equal(info.aud, SERVER);
    assert.equal(as.counters.count('device_code', 'ok'), 1);
  });

  it('access_denied: a LOGIN_REQUIRED error saying the user denied access, naming the server', async () => {
    let denial: Promise<void> | undefined;
    const error = await rejection(
      deviceAuthorization({
        ctx,
        resource: SERVER,
        prompt: (p) => {
          denial = denyDevice(p.verificationUri, p.userCode);
        },
      }),
    );
    await denial;
    assert.equal(error.code, 'LOGIN_REQUIRED');
    assert.equal(error.server, SERVER);
    assert.match(error.message, /you denied access at http:\/\/127\.0\.0\.1:\d+\/device/);
    assert.equal(as.counters.count('device_code', 'access_denied'), 1);
  });

  it('expired_token from the AS: LOGIN_REQUIRED saying the code expired', async () => {
    const fault = proxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      times: 1,
      action: {
        type: 'status',
        status: 400,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ error: 'expired_token', error_description: 'device code is expired' }),
      },
    });
    const error = await rejection(deviceAuthorization({ ctx, resource: SERVER, prompt: () => undefined }));
    assert.equal(fault.hits, 1);
    assert.equal(error.code, 'LOGIN_REQUIRED');
    assert.equal(error.server, SERVER);
    assert.match(error.message, /expired before the sign-in/);
  });

  it('stops polling by itself once expires_in has passed', async () => {
    // A device code that lives 1 s with a 2 s interval: not one poll fits.
    const endpoint = new URL(metadata.device_authorization_endpoint ?? '');
    const fault = proxy.inject({
      path: endpoint.pathname,
      times: 1,
      action: {
        type: 'garbage',
        status: 200,
        body: JSON.stringify({
          device_code: 'short-lived-device-code',
          user_code: 'WDJB-MJHT',
          verification_uri: `${as.issuer}/device`,
          expires_in: 1,
          interval: 2,
        }),
      },
    });
    const polls = proxy.seen('/token').length;
    const error = await rejection(deviceAuthorization({ ctx, resource: SERVER, prompt: () => undefined }));
    assert.equal(fault.hits, 1);
    assert.equal(error.code, 'LOGIN_REQUIRED');
    assert.match(error.message, /WDJB-MJHT expired/);
    assert.equal(proxy.seen('/token').length, polls, 'no poll was sent');
  });

  it('slow_down adds 5 s to the interval from then on', async () => {
    const fault = proxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      times: 1,
      action: {
        type: 'status',
        status: 400,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ error: 'slow_down' }),
      },
    });
    // The waits are recorded at full length but served at 150 ms so the test stays short.
    const { waits, sleep } = recordingSleep(150);
    const user = approving('sam');
    const result = await user.run(
      deviceAuthorization({ ctx, resource: SERVER, scope: as.scope, sleep, ...user }),
    );
    assert.equal(fault.hits, 1);
    assert.equal(waits[0], 1000);
    assert.ok(
      waits.slice(1).every((w) => w === 1000 + SLOW_DOWN_STEP_MS),
      `after slow_down: ${JSON.stringify(waits)}`,
    );
    assert.equal((await as.introspect(result.response.access_token)).sub, 'sam');
  });

  it('a 503 while polling is ridden out; polling continues', async () => {
    const fault = proxy.inject({
      method: 'POST',
      path: '/token',
      exact: true,
      times: 1,
      action: { type: 'status', status: 503 },
    });
    const user = approving('tess');
    const result = await user.run(deviceAuthorization({ ctx, resource: SERVER, scope: as.scope, ...user }));
    assert.equal(fault.hits, 1);
    assert.equal((await as.introspect(result.response.access_token)).sub, 'tess');
  });

  it('abort: CANCELLED, and polling stops', async () => {
    const controller = new AbortController();
    const before = as.counters.count('device_code');
    const error = await rejection(
      deviceAuthorization({
        ctx,
        resource: SERVER,
        signal: controller.signal,
        prompt: () => setTimeout(() => controller.abort(), 50),
      }),
    );
    assert.equal(error.code, 'CANCELLED');
    assert.equal(error.server, SERVER);
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(as.counters.count('device_code'), before, 'no poll after the abort');
  });

  it('an AS without a device authorization endpoint is reported, not attempted', async () => {
    const noDevice = await startAuthorizationServer({ deviceFlow: false });
    try {
      const md = await discover(noDevice.issuer);
      const error = await rejection(
        deviceAuthorization({
          ctx: publicClientContext(md, noDevice.clientId),
          resource: SERVER,
          prompt: () => assert.fail('no prompt'),
        }),
      );
      assert.equal(error.code, 'DISCOVERY_FAILED');
      assert.match(error.message, /does not support device login/);
    } finally {
      await noDevice.close();
    }
  });

  for (const [what, uris] of [
    ['a javascript: verification_uri', { verification_uri: 'javascript:alert(document.cookie)' }],
    ['a file: verification_uri', { verification_uri: 'file:///etc/passwd' }],
    ['a plain-http verification_uri on a remote host', { verification_uri: 'http://as.example.com/device' }],
    [
      'a javascript: verification_uri_complete next to a good verification_uri',
      { verification_uri: 'https://as.example.com/device', verification_uri_complete: 'javascript:alert(1)' },
    ],
  ] as const) {
    it(`${what} refuses the device login: not shown, not polled, not echoed`, async () => {
      const endpoint = new URL(metadata.device_authorization_endpoint ?? '');
      const fault = proxy.inject({
        path: endpoint.pathname,
        times: 1,
        action: {
          type: 'garbage',
          status: 200,
          body: JSON.stringify({
            device_code: 'hostile-device-code',
            user_code: 'HOST-ILE1',
            expires_in: 600,
            interval: 1,
            ...uris,
          }),
        },
      });
      const polls = proxy.seen('/token').length;
      let prompted = false;
      const error = await rejection(
        deviceAuthorization({
          ctx,
          resource: SERVER,
          prompt: () => {
            prompted = true;
          },
        }),
      );
      assert.equal(fault.hits, 1);
      assert.equal(prompted, false, 'the user was never shown the URI');
      assert.equal(error.code, 'DISCOVERY_FAILED');
      assert.equal(error.server, SERVER);
      assert.equal(error.retryable, false);
      assert.match(error.message, /refused the device login/);
      assert.match(error.message, new RegExp(`^${SERVER.replace(/[.]/g, '\\.')}: `));
      for (const uri of Object.values(uris)) {
        if (!uri.startsWith('https:')) assert.ok(!error.message.includes(uri), 'the bad URI is not echoed');
      }
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(proxy.seen('/token').length, polls, 'no poll was sent');
    });
  }

  it('the default poll interval is 5 s (RFC 8628 §3.2)', () => {
    assert.equal(DEFAULT_POLL_INTERVAL_MS, 5000);
  });
});

describe('device prompt', () => {
  const prompt: DevicePrompt = {
    verificationUri: 'https://as.example/device',
    verificationUriComplete: 'https://as.example/device?user_code=WDJB-MJHT',
    userCode: 'WDJB-MJHT',
    expiresAt: 1_000_000 + 600_000,
  };

  it('shows the URI, the code, a QR code of the complete URI and the expiry', () => {
    const text = renderDevicePrompt(prompt, { server: 'https://mcp.example/mcp', now: 1_000_000 });
    assert.match(text, /To sign in to https:\/\/mcp\.example\/mcp/);
    assert.match(text, /^ {2}https:\/\/as\.example\/device$/m);
    assert.match(text, /enter the code: {2}WDJB-MJHT/);
    assert.match(text, /the code is filled in/);
    assert.match(text, /[▀▄█]{10}/, 'a QR code');
    assert.match(text, /expires in 10 minutes/);
    const noQr = renderDevicePrompt(prompt, { qr: false, now: 1_000_000 });
    assert.doesNotMatch(noQr, /[▀▄█]/);
    assert.match(noQr, /Or open https:\/\/as\.example\/device\?user_code=WDJB-MJHT directly/);
  });

  it('server-supplied strings cannot smuggle terminal escape sequences', () => {
    const text = renderDevicePrompt(
      { ...prompt, userCode: 'AB\u001b[2JCD', verificationUri: 'https://as.example/\u001b]8;;evil\u0007x' },
      { qr: false },
    );
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(text, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
  });

  it('writes to stderr, never stdout', () => {
    const stdout = process.stdout.write;
    const stderr = process.stderr.write;
    const out: string[] = [];
    const err: string[] = [];
    process.stdout.write = ((chunk: string) => out.push(chunk) > 0) as typeof process.stdout.write;
    process.stderr.write = ((chunk: string) => err.push(chunk) > 0) as typeof process.stderr.write;
    try {
      stderrDevicePrompt({ qr: false })(prompt);
    } finally {
      process.stdout.write = stdout;
      process.stderr.write = stderr;
    }
    assert.deepEqual(out, []);
    assert.match(err.join(''), /WDJB-MJHT/);
  });
});
