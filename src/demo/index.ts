// What `latchkey demo` runs on 127.0.0.1: an OAuth authorization server (oidc-provider), a
// protected MCP server (the MCP SDK), and a driver that plays a user's browser on the AS's
// pages. Only the demo command loads this module, by dynamic import: nothing else in the
// package imports oidc-provider. latchkey's tests build on the same servers (test/harness/).
export { type AuthorizationServer, startAuthorizationServer } from './authorization-server.js';
export { completeAuthorization } from './login-driver.js';
export { type McpServerHandle, startMcpServer } from './mcp-server.js';
