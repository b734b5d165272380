/**
 * `latchkey/proxy`: what `latchkey proxy` is made of, for a host that runs the relay in its
 * own process: a stdio relay to a remote MCP server and the proxy's login policy.
 */

/** Relay MCP messages between stdio and a remote server, through an McpConnection. */
export { runStdioRelay } from '../proxy/stdio.js';
/** The proxy's authorizer: when and how it may log in (browser awaited, device at once). */
export { createProxyAuthorizer } from '../proxy/authorizer.js';
/** The proxy authorizer, its options and its login policy. */
export type { ProxyAuthorizer, ProxyAuthorizerOptions, ProxyLoginPolicy } from '../proxy/authorizer.js';
