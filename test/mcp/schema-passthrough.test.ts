// A tool's inputSchema reaches the host untouched (issue 18; SEP-1613, SEP-2106): $schema,
// $defs with $anchor, additionalProperties, allOf/anyOf, if/then/else, and key order. The
// server is the real SDK low-level Server answering tools/list with a raw JSON Schema (no
// zod, so the bytes are the test's), behind the real AS's tokens. What the host receives is
// compared, as serialized JSON, with what the server put on the wire.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  LATEST_PROTOCOL_VERSION,
  ListToolsRequestSchema,
  type JSONRPCMessage,
} from '@modelcontextprotocol/sdk/types.js';
import { Client as Client2, StreamableHTTPClientTransport as Transport2 } from '@modelcontextprotocol/client';
import { z } from 'zod';

import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';
import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { connectMcpClient } from '../../src/mcp/client.js';
import { McpConnection } from '../../src/mcp/connection.js';
import { McpConnectionTransport } from '../../src/mcp/connection-transport.js';
import { createSdkAuthProvider } from '../../src/mcp/sdk-provider.js';
import { createSdk2AuthProvider } from '../../src/mcp/sdk2-provider.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { obtainTokens, startAuthorizationServer, type TestAuthorizationServer } from '../harness/index.js';
import { captureIO } from '../support/cli-io.js';
import { loginHook } from '../support/login-hook.js';
import { spawnRawHost } from '../support/raw-host.js';

/** The conformance fixture's kind of schema, `$schema` first so that any reordering shows. */
const RICH_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  $defs: {
    address: {
      $anchor: 'address',
      type: 'object',
      properties: { street: { type: 'string' }, zip: { type: 'string', pattern: '^[0-9]{5}$' } },
      required: ['street'],
      additionalProperties: false,
    },
  },
  properties: {
    kind: { enum: ['home', 'work'] },
    home: { $ref: '#address' },
    work: { $ref: '#/$defs/address' },
    note: { type: ['string', 'null'], 'x-vendor': { keep: true } },
  },
  required: ['kind'],
  additionalProperties: false,
  allOf: [{ anyOf: [{ required: ['home'] }, { required: ['work'] }] }],
  if: { properties: { kind: { const: 'work' } } },
  then: { required: ['work'] },
  else: { required: ['home'] },
};
const TOOL = { name: 'rich_schema', description: 'JSON Schema 2020-12 keywords', inputSchema: RICH_SCHEMA };

interface SchemaServer {
  url: string;
  /** The tools/list result bodies as the server serialized them. */
  wire: string[];
  close(): Promise<void>;
}

/** The SDK's low-level Server, stateless Streamable HTTP, tokens checked at the real AS. */
async function startSchemaServer(as: TestAuthorizationServer): Promise<SchemaServer> {
  const wire: string[] = [];
  const http = createServer((req, res) => void handle(req, res));
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token === undefined || !(await as.introspect(token)).active) {
      res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
      return;
    }
    const server = new Server({ name: 'schema-server', version: '1.0.0' }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [TOOL] }));
    const transport = new StreamableHTTPServerTransport({ enableJsonResponse: true });
    const send = transport.send.bind(transport);
    transport.send = async (message: JSONRPCMessage, options) => {
      if ('result' in message && JSON.stringify(message.result).includes('rich_schema')) {
        wire.push(JSON.stringify(message.result));
      }
      return send(message, options);
    };
    await server.connect(transport);
    res.on('close', () => void server.close());
    await transport.handleRequest(req, res);
  }
  const sockets = trackSockets(http);
  const url = `${await listenOnLoopback(http, 0)}/mcp`;
  as.addResource(url);
  return { url, wire, close: () => closeServer(http, sockets) };
}

/** The inputSchema of `rich_schema` in a tools/list result, serialized as received. */
function received(result: unknown): string {
  const tools = (result as { tools?: Array<{ name: string; inputSchema?: unknown }> }).tools ?? [];
  const tool = tools.find((t) => t.name === TOOL.name);
  assert.ok(tool !== undefined, `rich_schema listed: ${JSON.stringify(result)}`);
  return JSON.stringify(tool.inputSchema);
}

describe('tool inputSchemas reach the host untouched', () => {
  let as: TestAuthorizationServer;
  let schemaServer: SchemaServer;
  let manager: CredentialManager;
  let sent: string;
  before(async () => {
    as = await startAuthorizationServer({ accessTokenTtl: 300 });
    schemaServer = await startSchemaServer(as);
    manager = new CredentialManager({
      store: createMemoryStore(),
      logger: silentLogger,
      acquire: loginHook(as),
    });
    await manager.getAccessToken(schemaServer.url);
    sent = JSON.stringify(RICH_SCHEMA);
  });
  after(async () => {
    manager.close();
    await schemaServer.close();
    await as.close();
  });

  /** The server's serialized schema for the last tools/list: the fixture, byte for byte. */
  function lastSent(): string {
    const result = schemaServer.wire.at(-1);
    assert.ok(result !== undefined, 'the server answered tools/list');
    const schema = received(JSON.parse(result));
    assert.equal(schema, sent, 'the SDK server sends the raw schema as given');
    return schema;
  }

  it('through `latchkey proxy`: the host reads the same bytes', async () => {
    const home = await mkdtemp(join(tmpdir(), 'latchkey-schema-'));
    const { response } = await obtainTokens(as, { resource: schemaServer.url, subject: 'local' });
    const host = spawnRawHost([schemaServer.url, '--header', 'Authorization: Bearer ${LK_TOKEN}'], {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: randomBytes(32).toString('base64'),
      LK_TOKEN: response.access_token,
    });
    try {
      const init = await host.request(
        'initialize',
        {
          protocolVersion: LATEST_PROTOCOL_VERSION,
          capabilities: {},
          clientInfo: { name: 'raw', version: '1' },
        },
        30_000,
      );
      assert.ok(init.result !== undefined, JSON.stringify(init));
      host.notify('notifications/initialized');
      const answer = await host.request('tools/list', {}, 30_000);
      assert.equal(received(answer.result), lastSent());
      assert.deepEqual(host.junk, []);
    } finally {
      await host.close();
      await rm(home, { recursive: true, force: true });
    }
  });

  it('`latchkey tools --json` prints the schema as the server sent it', async () => {
    const home = await mkdtemp(join(tmpdir(), 'latchkey-schema-'));
    const { response } = await obtainTokens(as, { resource: schemaServer.url, subject: 'local' });
    const env = {
      LATCHKEY_HOME: home,
      LATCHKEY_KEY: randomBytes(32).toString('base64'),
      LK_TOKEN: response.access_token,
    };
    try {
      const io = captureIO(env);
      const args = ['tools', schemaServer.url, '--json', '--header', 'Authorization: Bearer ${LK_TOKEN}'];
      assert.equal(await main(args, io), ExitCode.OK, io.stderr);
      assert.equal(received(JSON.parse(io.stdout)), lastSent());
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it('through McpConnectionTransport: the message an SDK Client is handed is the same bytes', async () => {
    const connection = new McpConnection({ server: schemaServer.url, manager, logger: silentLogger });
    const transport = new McpConnectionTransport(connection);
    const messages: JSONRPCMessage[] = [];
    const client = new Client({ name: 'embedder', version: '1.0.0' });
    await client.connect(transport);
    // Listen under the Client: what the adapter delivers, before the SDK parses it.
    const deliver = transport.onmessage;
    transport.onmessage = (message: JSONRPCMessage) => {
      messages.push(message);
      deliver?.(message);
    };
    try {
      const listed = await client.listTools();
      const answer = messages.find((m) => 'result' in m && JSON.stringify(m.result).includes(TOOL.name));
      assert.ok(answer !== undefined && 'result' in answer);
      assert.equal(received(answer.result), lastSent());
      // The SDK 1.x Client rebuilds inputSchema (its known keys first): every keyword and value
      // survives, in another key order. Hosts that need the order read the transport's message.
      assert.deepStrictEqual(JSON.parse(received(listed)), RICH_SCHEMA);
    } finally {
      await client.close();
    }
  });

  it('through connectMcpClient (raw request) and the SDK 1.x and 2.x auth providers', async () => {
    const client = await connectMcpClient(schemaServer.url, { manager, transport: 'streamable-http' });
    try {
      const raw = await client.request({ method: 'tools/list', params: {} }, passthrough);
      assert.equal(received(raw), lastSent());
      assert.deepStrictEqual(JSON.parse(received(await client.listTools())), RICH_SCHEMA);
    } finally {
      await client.close();
    }

    const sdk1 = new Client({ name: 'sdk1-host', version: '1' });
    await sdk1.connect(
      new StreamableHTTPClientTransport(new URL(schemaServer.url), {
        authProvider: createSdkAuthProvider(schemaServer.url, { manager }),
      }),
    );
    try {
      assert.equal(
        received(await sdk1.request({ method: 'tools/list', params: {} }, passthrough)),
        lastSent(),
      );
    } finally {
      await sdk1.close();
    }

    const sdk2 = new Client2({ name: 'sdk2-host', version: '1' });
    await sdk2.connect(
      new Transport2(new URL(schemaServer.url), {
        authProvider: createSdk2AuthProvider(schemaServer.url, { manager }),
      }),
    );
    try {
      const listed = await sdk2.listTools();
      assert.deepStrictEqual(JSON.parse(received(listed)), RICH_SCHEMA);
      lastSent();
    } finally {
      await sdk2.close();
    }
  });
});

/** A result schema that keeps the answer as it came: unknown keys, in their order. */
const passthrough = z.looseObject({});
