/**
 * latchkey's client for the MCP conformance harness (`@modelcontextprotocol/conformance`),
 * built on the public API only. The harness runs it as `<command> <server-url>` with
 * MCP_CONFORMANCE_SCENARIO, MCP_CONFORMANCE_CONTEXT (JSON: pre-registered client id, secret,
 * private key) and, from 0.2.0, MCP_CONFORMANCE_PROTOCOL_VERSION (the wire revision).
 *
 * It logs in the way a latchkey user would (memory store, CredentialManager, the login hook),
 * talks to the server through createAuthFetch, lists the tools and calls the first one. The
 * browser is headless: opening the authorization URL means fetching it, reading the redirect
 * and delivering it to latchkey's loopback listener. Exit 0 on success, 1 with the error on
 * stderr otherwise.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

import {
  type ClientConfig,
  createAuthFetch,
  type IdpSource,
  createLoginHook,
  createMemoryStore,
  CredentialManager,
  type LoginFlow,
} from '../src/index.js';
import { McpConnection } from '../src/subpath/mcp.js';
import { StatelessClient, type Tool } from './stateless.js';

/** The Client ID Metadata Document URL the harness's CIMD scenarios expect. */
const CLIENT_METADATA_URL = 'https://conformance-test.local/client-metadata.json';
const CLIENT_INFO = { name: 'latchkey-conformance', version: '0.1.0' };
/** Tools called at most at a stateless revision (a scenario lists a handful). */
const MAX_TOOL_CALLS = 20;
/** The echo tool of the json-schema-2020-12-preservation scenario. */
const SCHEMA_ECHO_TOOL = 'json_schema_echo';
/** Revisions with the initialize handshake; later ones are stateless (SEP-2575). */
const STATEFUL_REVISIONS = new Set(['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25']);

interface ScenarioContext {
  client_id?: string;
  client_secret?: string;
  private_key_pem?: string;
  signing_algorithm?: string;
  /** auth/wif-jwt-bearer: the workload JWT to use (the other two are for negative tests). */
  valid_jwt?: string;
  /** Enterprise-managed authorization (SEP-990): the user's IdP session, already signed in. */
  idp_issuer?: string;
  idp_token_endpoint?: string;
  idp_client_id?: string;
  idp_id_token?: string;
  /** The calls a scenario wants made (http-custom-headers): tool names and their arguments. */
  toolCalls?: Array<{ name: string; arguments: Record<string, unknown> }>;
}

async function main(): Promise<void> {
  const serverUrl = process.argv.at(-1);
  if (serverUrl === undefined || !/^https?:/.test(serverUrl)) {
    throw new Error('usage: client.ts <server-url>');
  }
  const scenario = process.env['MCP_CONFORMANCE_SCENARIO'] ?? '';
  const context = JSON.parse(process.env['MCP_CONFORMANCE_CONTEXT'] ?? '{}') as ScenarioContext;
  const revision = process.env['MCP_CONFORMANCE_PROTOCOL_VERSION'];

  const flow = loginFlow(scenario);
  const store = createMemoryStore();
  const manager = new CredentialManager({
    store,
    acquire: createLoginHook({
      store,
      flow,
      client: await clientConfig(flow, context),
      ...idpOption(context),
      openBrowser: followAuthorizationRedirect,
      notify: () => undefined,
      quirks: { offlineAccess: true },
      timeoutMs: 20_000,
    }),
  });
  const authFetch = createAuthFetch(serverUrl, { manager });
  try {
    if (revision === undefined || STATEFUL_REVISIONS.has(revision)) await runStateful(serverUrl, authFetch);
    else await runStateless(serverUrl, revision, { manager, authFetch, context });
  } finally {
    manager.close();
  }
}

function loginFlow(scenario: string): LoginFlow | 'auto' {
  if (scenario.startsWith('auth/client-credentials')) return 'client-credentials';
  if (scenario.startsWith('auth/wif')) return 'workload-identity';
  // SEP-990 is chosen by the AS's metadata (it accepts the JWT bearer grant), as for a user
  // with an IdP session: `auto`, not a flow named here.
  if (
    scenario === 'auth/cross-app-access-complete-flow' ||
    scenario === 'auth/enterprise-managed-authorization'
  )
    return 'auto';
  return 'browser';
}

/** The IdP session the scenario hands over: its ID token stands in for `latchkey login --idp`. */
function idpOption(context: ScenarioContext): { idp?: IdpSource } {
  const { idp_issuer: issuer, idp_id_token: idToken, idp_client_id: clientId } = context;
  if (issuer === undefined || idToken === undefined || clientId === undefined) return {};
  return {
    idp: {
      issuer,
      clientId,
      ...(context.idp_token_endpoint === undefined ? {} : { tokenEndpoint: context.idp_token_endpoint }),
      idToken: () => Promise.resolve(idToken),
    },
  };
}

async function clientConfig(flow: LoginFlow | 'auto', context: ScenarioContext): Promise<ClientConfig> {
  const config: ClientConfig = { clientName: CLIENT_INFO.name };
  if (flow === 'workload-identity' && context.valid_jwt !== undefined) {
    config.workloadTokenFile = await workloadTokenFile(context.valid_jwt);
  }
  if (context.client_id !== undefined) config.clientId = context.client_id;
  if (context.client_secret !== undefined) config.clientSecret = context.client_secret;
  if (context.private_key_pem !== undefined) {
    config.privateKey = {
      key: context.private_key_pem,
      ...(context.signing_algorithm === undefined ? {} : { alg: context.signing_algorithm }),
    };
  }
  // A user-facing client publishes a metadata document; used where the AS supports CIMD.
  if (flow === 'browser') config.clientMetadataUrl = CLIENT_METADATA_URL;
  return config;
}

/**
 * Where the platform would have put the workload's JWT (a projected service-account token):
 * a private file, removed when the client exits.
 */
async function workloadTokenFile(jwt: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-wif-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'token');
  await writeFile(file, jwt, { mode: 0o600 });
  return file;
}

/**
 * The headless browser: the harness's authorization endpoint redirects at once, so fetch it,
 * take the redirect and hand it to the loopback listener, as a browser would.
 */
async function followAuthorizationRedirect(url: string): Promise<void> {
  const response = await fetch(url, { redirect: 'manual' });
  await response.body?.cancel();
  const location = response.headers.get('location');
  if (location === null) throw new Error(`the authorization endpoint answered HTTP ${response.status}`);
  // The listener answers once the login has finished with the code; nothing to wait for here.
  fetch(new URL(location, url)).then(
    (callback) => callback.body?.cancel(),
    (error: unknown) =>
      process.stderr.write(`delivering the authorization response failed: ${String(error)}\n`),
  );
}

/** 2025-11-25 and earlier: the MCP SDK's client and Streamable HTTP transport. */
async function runStateful(serverUrl: string, authFetch: typeof fetch): Promise<void> {
  const client = new Client(CLIENT_INFO, {
    capabilities: { elicitation: { form: { applyDefaults: true } } },
  });
  // Accept form elicitations as is; the SDK fills in the schema's defaults (SEP-1034).
  client.setRequestHandler(ElicitRequestSchema, () => ({ action: 'accept', content: {} }));
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { fetch: authFetch });
  await client.connect(transport);
  try {
    const { tools } = await client.listTools();
    const [tool] = tools;
    const echo = schemaEchoCalls(tools);
    if (echo !== undefined) for (const call of echo) await client.callTool(call);
    else if (tool !== undefined)
      await client.callTool({ name: tool.name, arguments: exampleArguments(tool) });
  } finally {
    await client.close();
  }
}

/**
 * 2026-07-28 and later: stateless requests through latchkey's McpConnection (see
 * stateless.ts). Every tool the connection leaves in the list is called, so a tool it failed
 * to drop for a bad `x-mcp-header` would be called too; the scenario's own calls take
 * precedence when it names them.
 */
async function runStateless(
  serverUrl: string,
  revision: string,
  deps: { manager: CredentialManager; authFetch: typeof fetch; context: ScenarioContext },
): Promise<void> {
  // Authentication is the interactive auth fetch's (it logs in); the connection adds the wire.
  const connection = new McpConnection({
    server: serverUrl,
    manager: deps.manager,
    transport: 'streamable-http',
    authenticate: false,
    fetch: deps.authFetch,
  });
  const client = new StatelessClient({ connection, protocolVersion: revision, clientInfo: CLIENT_INFO });
  try {
    await client.discover();
    const tools = await client.listTools();
    const listed = new Set(tools.map((t) => t.name));
    const calls =
      deps.context.toolCalls?.filter((c) => listed.has(c.name)) ??
      schemaEchoCalls(tools) ??
      tools.slice(0, MAX_TOOL_CALLS).map((tool) => ({ name: tool.name, arguments: exampleArguments(tool) }));
    for (const call of calls) await client.callTool(call.name, call.arguments);
  } finally {
    await connection.close();
  }
}

/**
 * json-schema-2020-12-preservation (SEP-1613, SEP-2106): a server with a `json_schema_echo`
 * tool wants every other tool's inputSchema passed back as received, so that it can see
 * which keywords the client kept. Undefined for any other server.
 */
function schemaEchoCalls(
  tools: Tool[],
): Array<{ name: string; arguments: Record<string, unknown> }> | undefined {
  if (!tools.some((t) => t.name === SCHEMA_ECHO_TOOL)) return undefined;
  return tools
    .filter((t) => t.name !== SCHEMA_ECHO_TOOL)
    .map((t) => ({ name: SCHEMA_ECHO_TOOL, arguments: { schema: t.inputSchema } }));
}

/** Arguments for a tool call: a plain value of the right type for each required property. */
function exampleArguments(tool: Tool): Record<string, unknown> {
  const schema = (tool.inputSchema ?? {}) as {
    properties?: Record<string, { type?: string; enum?: unknown[] }>;
    required?: string[];
  };
  const args: Record<string, unknown> = {};
  for (const name of schema.required ?? []) {
    const property = schema.properties?.[name] ?? {};
    args[name] = property.enum?.[0] ?? exampleValue(property.type);
  }
  return args;
}

function exampleValue(type: string | undefined): unknown {
  switch (type) {
    case 'number':
    case 'integer':
      return 1;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'object':
      return {};
    default:
      return 'conformance';
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
