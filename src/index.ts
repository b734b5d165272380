/**
 * latchkey's public surface. Named exports only; anything not listed here is internal and
 * may change without notice.
 */

// The lifecycle engine
export { CredentialManager } from './lifecycle/manager.js';
export type { GetTokenOptions, ManagerEvents } from './lifecycle/manager.js';
export type { CredentialManagerOptions } from './lifecycle/options.js';
export type { AccessToken } from './lifecycle/token-cache.js';
export type { ManagerStats } from './lifecycle/context.js';
export type { AcquireHook, AcquireReason, AcquireRequest, AcquiredTokens } from './lifecycle/acquire.js';
export { DEFAULT_BACKOFF } from './lifecycle/backoff.js';
export type { BackoffPolicy } from './lifecycle/backoff.js';
export { DEFAULT_REVOCATION_RETRY } from './lifecycle/pending-revocations.js';
export type { RevocationRetryPolicy } from './lifecycle/pending-revocations.js';

// Credentials
export { canonicalServer, LOCAL_SUBJECT } from './credential/key.js';
export type { CredentialKey } from './credential/key.js';
export type {
  CredentialRecord,
  CredentialState,
  CredentialStatus,
  StoredCredential,
  TokenSecrets,
} from './credential/model.js';
export {
  DEFAULT_SKEW_MS,
  effectiveSkewMs,
  isUsable,
  mandatoryRefreshAt,
  proactiveRefreshAt,
} from './credential/expiry.js';
export { credentialFromTokenResponse } from './credential/token-response.js';
export type { TokenEndpointResult } from './credential/token-response.js';
export { fingerprint, redactToken, redactValue } from './credential/redact.js';

// Stores
export { EventType } from './store/contract.js';
export { createMemoryStore } from './store/memory.js';
export { DEFAULT_WATCH_POLL_MS, openSqliteStore } from './store/sqlite.js';
export type { SqliteStoreOptions } from './store/sqlite.js';
export type { KeySource, KeyStorage } from './store/data-key.js';
export { defaultHome } from './store/paths.js';
export type {
  CredentialFilter,
  CredentialStore,
  DiscoveryKind,
  DiscoveryRecord,
  EventInput,
  EventQuery,
  Lease,
  LeaseHolder,
  LifecycleEvent,
  PendingRevocation,
  PendingRevocationStore,
  Registration,
  RevocationTokenType,
  StoreSecurity,
  WriteCondition,
  WriteResult,
} from './store/contract.js';

// OAuth acquisition and logout
export { createLoginHook } from './login/login.js';
export type { IdpQuirks, LoginFlow, LoginOptions } from './login/login.js';
export type { BrowserOpener } from './login/browser.js';
export type { BearerChallenge, ClientConfig, ServerDiscovery } from './oauth/types.js';
export { bearerChallenge, parseWwwAuthenticate } from './oauth/www-authenticate.js';
export { discoverServer } from './oauth/discovery.js';
export { clientCredentialsHook } from './login/client-credentials.js';
export { LogoutError } from './lifecycle/logout.js';
export type { LogoutOptions, LogoutReport } from './lifecycle/logout.js';
export type { RevocationOutcome, RevocationReport } from './oauth/revocation.js';

// Errors and logging
export { ErrorCode, isLatchkeyError, LatchkeyError } from './errors.js';
export type { LatchkeyErrorOptions } from './errors.js';
export { createLogger, silentLogger } from './log.js';
export type { Logger, LoggerOptions, LogLevel } from './log.js';

// MCP transports
export { createAuthFetch } from './mcp/auth-fetch.js';
export { createSdkAuthProvider } from './mcp/sdk-provider.js';
export type { SdkAuthProviderOptions } from './mcp/sdk-provider.js';
export { createSdk2AuthProvider } from './mcp/sdk2-provider.js';
export type { Sdk2AuthProvider, Sdk2AuthProviderOptions } from './mcp/sdk2-provider.js';
export type { AuthFetchOptions } from './mcp/auth-fetch.js';
export { McpConnection } from './mcp/connection.js';
export { McpConnectionTransport } from './mcp/connection-transport.js';
export type { Authorizer, ConnectionOptions, TransportStrategy } from './mcp/connection.js';
export { connectMcpClient } from './mcp/client.js';
export type { McpClientOptions } from './mcp/client.js';
export { RpcErrorCode } from './mcp/jsonrpc.js';
export type { JsonRpcMessage } from './mcp/jsonrpc.js';
export type { LatchkeyErrorData } from './mcp/rpc-errors.js';
export { runStdioRelay } from './proxy/stdio.js';
export { createProxyAuthorizer } from './proxy/authorizer.js';
export type { ProxyAuthorizer, ProxyAuthorizerOptions, ProxyLoginPolicy } from './proxy/authorizer.js';
