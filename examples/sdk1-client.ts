// An MCP host on @modelcontextprotocol/sdk 1.x with latchkey keeping its credential.
// Type-checked in CI (`npm run typecheck`); docs/sdk.md explains each choice.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { createAuthFetch, createLoginHook, CredentialManager, openSqliteStore } from 'latchkey';
import { createSdkAuthProvider } from 'latchkey/mcp';

const server = 'https://mcp.example.com/mcp';
const store = await openSqliteStore(); // ~/.latchkey, shared with the CLI and other processes
const manager = new CredentialManager({ store, acquire: createLoginHook({ store }) });

const transport = new StreamableHTTPClientTransport(new URL(server), {
  // The SDK's OAuth hook: access tokens from latchkey, never a refresh token, so the SDK
  // never refreshes on its own.
  authProvider: createSdkAuthProvider(server, { manager }),
  // Optional but recommended: a 401 is answered below the SDK (refresh once, resend), so
  // the host never sees UnauthorizedError; 403 insufficient_scope steps up.
  fetch: createAuthFetch(server, { manager }),
});

const client = new Client({ name: 'my-host', version: '1.0.0' });
try {
  await client.connect(transport);
} catch (error) {
  // Without the fetch above: latchkey has renewed the credential, so one retry is enough.
  if (!(error instanceof UnauthorizedError)) throw error;
  await client.connect(transport);
}
const result = await client.callTool({ name: 'echo', arguments: { text: 'hello' } });
console.log(result.content);
await client.close();
manager.close();
await store.close();
