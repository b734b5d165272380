// Real components on 127.0.0.1 for `latchkey demo` (and latchkey's own tests): an OAuth
// authorization server (oidc-provider), a protected MCP server (the MCP SDK), and a driver
// that plays a user's browser on the AS's pages. Loaded only by the demo: nothing else in
// the package imports oidc-provider.
export {
  type AuthorizationServerFront,
  type AuthorizationServerOptions,
  type ConfidentialClient,
  type IntrospectionResult,
  LOOPBACK_REDIRECT_URI,
  PUBLIC_CLIENT_ID,
  startAuthorizationServer,
  type TestAuthorizationServer,
} from './authorization-server.js';
export { CookieJar } from './cookie-jar.js';
export { Counters } from './counters.js';
export {
  approveDevice,
  type AuthorizationDriverOptions,
  completeAuthorization,
  type DeviceDriverOptions,
} from './login-driver.js';
export { buildServer, type McpServerOptions, startMcpServer, type TestMcpServer } from './mcp-server.js';
