// App keys scoped to a subject prefix (docs/serve.md, "One gateway, several applications"),
// over real HTTP, with real connections from the real oidc-provider AS, the real SDK MCP
// server and a real store (SQLite; PostgreSQL with LATCHKEY_TEST_STORE=postgres). Two apps
// share one gateway: Open WebUI with a key for `owui:` and LibreChat with one for `lc:`; both
// have a user `1`. Neither key may read, use or revoke the other app's user, on any route.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { createAppKey } from '../../src/serve/app-keys.js';
import { ROUTES } from '../../src/serve/routes.js';
import { captureIO } from '../support/cli-io.js';
import { type McpEnv, startMcpEnv } from './mcp-env.js';
import { SseReader } from './sse-reader.js';

const RETURN_TO = 'https://app.example.com/settings';

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** One call of every route that names a subject in its path, for `subject`. */
const SUBJECT_ROUTES: readonly [string, (subject: string) => string, unknown?, Record<string, string>?][] = [
  ['GET', (s) => `/v1/subjects/${s}/connections`],
  ['POST', (s) => `/v1/subjects/${s}/connections/demo`, { return_to: RETURN_TO }],
  ['GET', (s) => `/v1/subjects/${s}/connections/demo/token`],
  ['DELETE', (s) => `/v1/subjects/${s}/connections/demo`],
  ['POST', (s) => `/v1/subjects/${s}/portal`, {}],
  [
    'POST',
    (s) => `/v1/subjects/${s}/mcp/demo`,
    {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    },
    { accept: 'application/json, text/event-stream' },
  ],
  ['GET', (s) => `/v1/subjects/${s}/mcp/demo`, undefined, { accept: 'text/event-stream' }],
  ['DELETE', (s) => `/v1/subjects/${s}/mcp/demo`, undefined, { 'mcp-session-id': 'any' }],
];

describe('latchkey serve: app keys scoped to a subject prefix', () => {
  let env: McpEnv;
  /** Open WebUI's key (`owui:`), LibreChat's (`lc:`), and the operator's unscoped one. */
  let owui: string;
  let lc: string;
  let all: string;

  before(async () => {
    env = await startMcpEnv({ accessTokenTtl: 300 });
    all = env.key;
    owui = (await createAppKey(env.store, 'open webui', { subjectPrefix: 'owui:' })).key;
    lc = (await createAppKey(env.store, 'librechat', { subjectPrefix: 'lc:' })).key;
    // Both apps have a user "1"; each names it under its own prefix.
    await env.connect('owui:1', 'owui-user-at-as');
    await env.connect('lc:1', 'lc-user-at-as');
  });

  after(async () => {
    await env.close();
  });

  async function api(
    key: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Answer> {
    const response = await fetch(`${env.serve.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    let parsed: Record<string, unknown>;
    try {
      parsed = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
    } catch {
      parsed = { raw: text.slice(0, 200) };
    }
    return { status: response.status, body: parsed };
  }

  /** What an unscoped key sees of `subject`'s connection: its state and current access token. */
  async function snapshot(subject: string): Promise<{ state: unknown; token: string }> {
    const listed = await api(all, 'GET', `/v1/subjects/${subject}/connections`);
    assert.equal(listed.status, 200);
    const token = await api(all, 'GET', `/v1/subjects/${subject}/connections/demo/token`);
    assert.equal(token.status, 200, JSON.stringify(token.body));
    const [connection] = listed.body['connections'] as Record<string, unknown>[];
    return { state: connection?.['state'], token: String(token.body['access_token']) };
  }

  it('the routes below are every route that names a subject in its path', () => {
    const served = ROUTES.filter((r) => r.template.includes('{subject}')).map(
      (r) => `${r.method} ${r.template}`,
    );
    const tested = SUBJECT_ROUTES.map(
      ([method, path]) => `${method} ${path('{subject}').replace(/\/demo(\/|$)/, '/{upstream}$1')}`,
    );
    assert.deepEqual(tested.sort(), served.sort(), 'a new subject route must be added to SUBJECT_ROUTES');
    assert.ok(ROUTES.filter((r) => r.template.includes('{subject}')).every((r) => r.appKey));
  });

  it("every subject route answers 403 to a key naming the other app's user, and changes nothing", async () => {
    const pairs: [string, string, string, string][] = [
      // key, its prefix, the other app's subject, a subject of that app with no connection
      [owui, 'owui:', 'lc:1', 'lc:nobody'],
      [lc, 'lc:', 'owui:1', 'owui:nobody'],
    ];
    for (const [key, prefix, other, absent] of pairs) {
      const before = await snapshot(other);
      assert.equal(before.state, 'connected');
      const revocations = env.as.counters.count('revocation');
      const upstreamCalls = env.mcp.counters.count('auth');
      for (const [method, path, body, headers] of SUBJECT_ROUTES) {
        const answer = await api(key, method, path(other), body, headers);
        const what = `${method} ${path(other)} with the ${prefix} key`;
        assert.equal(answer.status, 403, `${what}: ${JSON.stringify(answer.body)}`);
        assert.deepEqual(
          answer.body,
          {
            error: 'forbidden',
            message: `this app key may only name subjects starting with "${prefix}".`,
          },
          `${what}: the key's scope, nothing of the other user`,
        );
        const unknown = await api(key, method, path(absent), body, headers);
        assert.deepEqual(unknown, answer, `${what}: the same answer as for a subject with no connection`);
      }
      const after = await snapshot(other);
      assert.deepEqual(after, before, `${other}: still connected with the same token`);
      assert.equal((await env.as.introspect(after.token)).active, true, 'not revoked at the AS');
      assert.equal(env.as.counters.count('revocation'), revocations, 'no revocation reached the AS');
      assert.equal(env.mcp.counters.count('auth'), upstreamCalls, 'no request reached the MCP server');
    }
  });

  it("a key works on its own app's subjects, on every route", async () => {
    const listed = await api(owui, 'GET', '/v1/subjects/owui:1/connections');
    assert.equal(listed.status, 200);
    assert.equal((listed.body['connections'] as Record<string, unknown>[])[0]?.['state'], 'connected');
    const token = await api(owui, 'GET', '/v1/subjects/owui:1/connections/demo/token');
    assert.equal(token.status, 200);
    assert.equal((await env.as.introspect(String(token.body['access_token']))).sub, 'owui-user-at-as');
    const started = await api(owui, 'POST', '/v1/subjects/owui:2/connections/demo', { return_to: RETURN_TO });
    assert.equal(started.status, 201, 'a connect link for a new user of its own');
    const portal = await api(owui, 'POST', '/v1/subjects/owui:1/portal', {});
    assert.equal(portal.status, 201, JSON.stringify(portal.body));
    const host = await env.host('/v1/subjects/owui:1/mcp/demo', { authorization: `Bearer ${owui}` });
    const whoami = await host.callTool({ name: 'whoami' });
    const text = (whoami as { content: { text?: string }[] }).content.map((c) => c.text ?? '').join('');
    assert.equal(text, 'owui-user-at-as', "the MCP endpoint serves the app's own user");
    const lcList = await api(lc, 'GET', '/v1/subjects/lc:1/connections');
    assert.equal(lcList.status, 200, 'the other key likewise on its own');
  });

  it('a prefix is a plain string compare: "owui:" does not cover "owui" or "OWUI:1"', async () => {
    for (const subject of ['owui', 'OWUI:1', 'xowui:1']) {
      const answer = await api(owui, 'GET', `/v1/subjects/${subject}/connections`);
      assert.equal(answer.status, 403, subject);
    }
    // Percent-encoding does not get around it: the decoded subject is compared.
    const encoded = await api(owui, 'GET', '/v1/subjects/lc%3A1/connections');
    assert.equal(encoded.status, 403);
  });

  it('the unscoped key still speaks for every subject', async () => {
    for (const subject of ['owui:1', 'lc:1']) {
      assert.equal((await api(all, 'GET', `/v1/subjects/${subject}/connections/demo/token`)).status, 200);
      assert.equal((await api(all, 'POST', `/v1/subjects/${subject}/portal`, {})).status, 201);
    }
  });

  it("GET /v1/events: a scoped key's stream never carries the other app's events, live or resumed", async () => {
    const events = (key: string, query = '', headers: Record<string, string> = {}) =>
      SseReader.open(`${env.serve.url}/v1/events${query}`, { authorization: `Bearer ${key}`, ...headers });
    const mine = await events(owui);
    const theirs = await events(lc);
    const every = await events(all);
    try {
      const refused = await api(owui, 'GET', '/v1/events?subject=lc:1');
      assert.equal(refused.status, 403, "a scoped key cannot ask for the other app's subject");
      assert.equal(refused.body['error'], 'forbidden');

      // LibreChat's user is disconnected by the operator; then Open WebUI's by Open WebUI.
      assert.equal((await api(all, 'DELETE', '/v1/subjects/lc:1/connections/demo')).status, 200);
      const lcGone = await every.waitFor((m) => m.event === 'disconnected' && m.data['subject'] === 'lc:1');
      await theirs.waitFor((m) => m.data['subject'] === 'lc:1');
      assert.equal((await api(owui, 'DELETE', '/v1/subjects/owui:1/connections/demo')).status, 200);
      const owuiGone = await mine.waitFor(
        (m) => m.event === 'disconnected' && m.data['subject'] === 'owui:1',
      );
      await every.waitFor((m) => m.data['subject'] === 'owui:1');
      assert.ok(Number(owuiGone.id) > Number(lcGone.id), "the other app's event came first");
      assert.deepEqual(
        mine.messages.filter((m) => !String(m.data['subject']).startsWith('owui:')),
        [],
        'the owui: stream carried no lc: event',
      );
      assert.ok(!mine.raw.includes('lc:1'), 'nor any mention of it');
      assert.ok(
        theirs.messages.every((m) => String(m.data['subject']).startsWith('lc:')),
        'nor the other way round',
      );

      // Resumed from the start of the log: the catch-up is filtered the same way.
      const resumed = await events(owui, '', { 'last-event-id': '0' });
      try {
        await resumed.waitFor((m) => m.id === owuiGone.id);
        assert.ok(resumed.messages.some((m) => m.event === 'connected' && m.data['subject'] === 'owui:1'));
        assert.ok(!resumed.raw.includes('lc:'), 'no lc: event in the catch-up');
        const unscoped = await events(all, '', { 'last-event-id': '0' });
        try {
          await unscoped.waitFor((m) => m.id === lcGone.id);
          assert.ok(unscoped.raw.includes('lc:1'), 'the log does hold the lc: events the unscoped key sees');
        } finally {
          await unscoped.close();
        }
      } finally {
        await resumed.close();
      }
    } finally {
      await mine.close();
      await theirs.close();
      await every.close();
    }
  });

  it('the OpenAPI document lists the 403 on every app-key route that names a subject', async () => {
    const response = await fetch(`${env.serve.url}/openapi.json`);
    const doc = (await response.json()) as {
      paths: Record<string, Record<string, { security?: unknown; responses?: Record<string, unknown> }>>;
    };
    const named = Object.entries(doc.paths).filter(([p]) => p.includes('{subject}') || p === '/v1/events');
    assert.ok(named.length >= 5);
    for (const [path, item] of named) {
      for (const [method, op] of Object.entries(item)) {
        if (method === 'parameters' || op.security === undefined) continue;
        assert.ok(op.responses?.['403'] !== undefined, `${method} ${path} documents 403`);
      }
    }
  });
});

describe('latchkey serve keys: --subject-prefix', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'latchkey-serve-scopes-cli-'));
    env = {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: randomBytes(32).toString('base64'),
      LATCHKEY_LOG_LEVEL: 'silent',
    };
  });
  after(() => rm(home, { recursive: true, force: true }));

  async function cli(...args: string[]) {
    const io = captureIO(env);
    const code = await main(['serve', 'keys', ...args], io);
    return { code, out: io.stdout, err: io.stderr };
  }

  it('keys create --subject-prefix stores the scope; keys list shows it, and "all subjects" for the others', async () => {
    const scoped = await cli('create', '--name', 'x', '--subject-prefix', 'owui:');
    assert.equal(scoped.code, ExitCode.OK, scoped.err);
    assert.match(scoped.err, /subjects starting with "owui:"/);
    const plain = await cli('create', '--name', 'y', '--json');
    assert.equal(plain.code, ExitCode.OK, plain.err);
    assert.equal((JSON.parse(plain.out) as Record<string, unknown>)['subject_prefix'], null);

    const listed = await cli('list');
    assert.equal(listed.code, ExitCode.OK, listed.err);
    const lines = listed.out.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines.find((l) => / x /.test(l)) ?? '', /subjects starting with "owui:"/);
    assert.match(lines.find((l) => / y /.test(l)) ?? '', /all subjects/);
    const json = JSON.parse((await cli('list', '--json')).out) as Record<string, unknown>[];
    assert.deepEqual(
      json.map((k) => [k['name'], k['subject_prefix']]),
      [
        ['x', 'owui:'],
        ['y', null],
      ],
    );
  });

  it('a bad prefix (empty, control characters, too long, a space) is an error naming the flag, and makes no key', async () => {
    const before = (JSON.parse((await cli('list', '--json')).out) as unknown[]).length;
    for (const bad of ['', 'ow\u0001ui:', 'owui:\n', 'x'.repeat(65), 'o wui:']) {
      const made = await cli('create', '--name', 'bad', '--subject-prefix', bad);
      assert.notEqual(made.code, ExitCode.OK, JSON.stringify(bad));
      assert.match(made.err, /--subject-prefix/, `${JSON.stringify(bad)}: ${made.err}`);
      assert.match(made.err, /1-64 characters/);
      assert.equal(made.out, '', 'no key printed');
    }
    assert.equal((JSON.parse((await cli('list', '--json')).out) as unknown[]).length, before);
    const longest = await cli('create', '--name', 'edge', '--subject-prefix', 'x'.repeat(64));
    assert.equal(longest.code, ExitCode.OK, '64 characters are allowed');
  });
});
