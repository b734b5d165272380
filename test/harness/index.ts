// The test harness: a real authorization server, a browser stand-in, a protected MCP
// server and a fault-injecting proxy, all on 127.0.0.1 with ephemeral ports. The AS, the
// MCP server and the login driver ship in the package (src/harness/) because `latchkey
// demo` runs them; the fault proxy, the legacy SSE server and token helpers are test-only.
export {
  type AuthorizationServerFront,
  type AuthorizationServerOptions,
  type ConfidentialClient,
  type IntrospectionResult,
  LOOPBACK_REDIRECT_URI,
  PUBLIC_CLIENT_ID,
  startAuthorizationServer,
  type TestAuthorizationServer,
} from '../../src/harness/authorization-server.js';
export { CookieJar } from '../../src/harness/cookie-jar.js';
export { Counters } from '../../src/harness/counters.js';
export {
  type FaultAction,
  type FaultHandle,
  type FaultProxy,
  type FaultRule,
  type SeenRequest,
  startFaultProxy,
} from './fault-proxy.js';
export {
  approveDevice,
  type AuthorizationDriverOptions,
  completeAuthorization,
  type DeviceDriverOptions,
} from '../../src/harness/login-driver.js';
export {
  type LegacySseMcpServerOptions,
  startLegacySseMcpServer,
  type TestLegacySseMcpServer,
} from './legacy-sse-server.js';
export { type McpServerOptions, startMcpServer, type TestMcpServer } from '../../src/harness/mcp-server.js';
export {
  DEFAULT_REDIRECT_URI,
  discover,
  insecure,
  type ObtainedTokens,
  type ObtainTokensOptions,
  obtainTokens,
  type TokenIssuer,
} from './obtain-tokens.js';
