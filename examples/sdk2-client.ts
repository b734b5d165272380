// An MCP host on the 2.x client package (@modelcontextprotocol/client) with latchkey keeping
// its credential. Type-checked in CI (`npm run typecheck`) against the real package types.
import { Client, StreamableHTTPClientTransport, type AuthProvider } from '@modelcontextprotocol/client';
import { createLoginHook, CredentialManager, openSqliteStore } from 'latchkey';
import { createSdk2AuthProvider } from 'latchkey/mcp';

const server = 'https://mcp.example.com/mcp';
const store = await openSqliteStore();
const manager = new CredentialManager({ store, acquire: createLoginHook({ store }) });

// 2.x transports ask token() before each request and onUnauthorized() on a 401, then resend
// once; every refresh is latchkey's, once per credential across processes.
const authProvider: AuthProvider = createSdk2AuthProvider(server, { manager });
const transport = new StreamableHTTPClientTransport(new URL(server), { authProvider });

const client = new Client({ name: 'my-host', version: '1.0.0' });
await client.connect(transport);
const result = await client.callTool({ name: 'echo', arguments: { text: 'hello' } });
console.log(result.content);
await client.close();
manager.close();
await store.close();
