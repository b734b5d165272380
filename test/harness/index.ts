// The test harness: a real authorization server, a browser stand-in, a protected MCP
// server and a fault-injecting proxy, all on 127.0.0.1 with ephemeral ports. The AS, the
// MCP server and the login driver are the demo's (src/demo/), which `latchkey demo` runs;
// the controls tests add to them, the fault proxy, the legacy SSE server and the token
// helpers are test-only and live here.
export {
  type AuthorizationServerFront,
  type ConfidentialClient,
  type IntrospectionResult,
  LOOPBACK_REDIRECT_URI,
  PUBLIC_CLIENT_ID,
} from '../../src/demo/authorization-server.js';
export {
  startAuthorizationServer,
  type TestAuthorizationServer,
  type TestAuthorizationServerOptions as AuthorizationServerOptions,
} from './authorization-server.js';
export { CookieJar } from '../../src/demo/cookie-jar.js';
export { Counters } from '../../src/demo/counters.js';
export {
  type FaultAction,
  type FaultHandle,
  type FaultProxy,
  type FaultRule,
  type SeenRequest,
  startFaultProxy,
} from './fault-proxy.js';
export { type AuthorizationDriverOptions, completeAuthorization } from '../../src/demo/login-driver.js';
export { approveDevice, type DeviceDriverOptions } from './device-driver.js';
export {
  type LegacySseMcpServerOptions,
  startLegacySseMcpServer,
  type TestLegacySseMcpServer,
} from './legacy-sse-server.js';
export { type McpServerOptions, startMcpServer, type TestMcpServer } from './mcp-server.js';
export {
  DEFAULT_REDIRECT_URI,
  discover,
  insecure,
  type ObtainedTokens,
  type ObtainTokensOptions,
  obtainTokens,
  type TokenIssuer,
} from './obtain-tokens.js';
