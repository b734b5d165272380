/**
 * `latchkey/mcp`: MCP clients that keep their credential through latchkey. Importing it
 * loads the MCP SDK (the SDK auth providers and `connectMcpClient` build on it).
 */

/** An MCP session that survives token expiry, server restarts and transport changes. */
export { McpConnection } from '../mcp/connection.js';
/** Options of `McpConnection`; its authorizer; which transports it tries. */
export type { Authorizer, ConnectionOptions, TransportStrategy } from '../mcp/connection.js';
/** What mcp needs of a credential source; CredentialManager satisfies both. */
export type { McpCredentials, TokenSource } from '../mcp/credentials.js';
/** An McpConnection as an MCP SDK client transport. */
export { McpConnectionTransport } from '../mcp/connection-transport.js';
/** Connect an MCP SDK client to a server with latchkey's credential. */
export { connectMcpClient } from '../mcp/client.js';
/** Options of `connectMcpClient`. */
export type { McpClientOptions } from '../mcp/client.js';
/** The MCP SDK 1.x OAuthClientProvider, backed by a CredentialManager. */
export { createSdkAuthProvider } from '../mcp/sdk-provider.js';
/** Options of `createSdkAuthProvider`. */
export type { SdkAuthProviderOptions } from '../mcp/sdk-provider.js';
/** The MCP SDK 2.x auth provider, backed by a CredentialManager. */
export { createSdk2AuthProvider } from '../mcp/sdk2-provider.js';
/** The SDK 2.x provider and its options. */
export type { Sdk2AuthProvider, Sdk2AuthProviderOptions } from '../mcp/sdk2-provider.js';
/** JSON-RPC error codes latchkey answers with, and the messages McpConnection carries. */
export { RpcErrorCode } from '../mcp/jsonrpc.js';
/** A JSON-RPC message as McpConnection sends and receives it. */
export type { JsonRpcMessage } from '../mcp/jsonrpc.js';
/** The `data` of a JSON-RPC error that carries a LatchkeyError. */
export type { LatchkeyErrorData } from '../mcp/rpc-errors.js';
