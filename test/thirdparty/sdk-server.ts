/**
 * Third-party server #1: an MCP server built the way the MCP SDK (1.x) documents it, on one
 * express app on 127.0.0.1: the SDK's `mcpAuthRouter` serves the AS metadata, registration,
 * authorization, token and revocation endpoints and the protected-resource metadata, with
 * our `RotatingProvider` behind it; the SDK's `requireBearerAuth` guards `/mcp`, where an SDK
 * `McpServer` (the harness's `echo` and `whoami` tools) answers over a stateless
 * `StreamableHTTPServerTransport`. Nothing here is latchkey's code.
 */
import { createServer } from 'node:http';

import express from 'express';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import {
  getOAuthProtectedResourceMetadataUrl,
  mcpAuthRouter,
} from '@modelcontextprotocol/sdk/server/auth/router.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

import { closeServer, listenOnLoopback, trackSockets } from '../../src/demo/listen.js';
import { buildServer } from '../../src/demo/mcp-server.js';
import { RotatingProvider } from './sdk-provider.js';

export interface SdkThirdPartyServer {
  /** The MCP endpoint, http://127.0.0.1:PORT/mcp (also the RFC 8707 resource). */
  readonly url: string;
  /** The AS issuer, http://127.0.0.1:PORT/ (the SDK writes the issuer with a trailing slash). */
  readonly issuer: string;
  readonly provider: RotatingProvider;
  close(): Promise<void>;
}

export async function startSdkServer(): Promise<SdkThirdPartyServer> {
  const server = createServer();
  const sockets = trackSockets(server);
  const origin = await listenOnLoopback(server);
  const url = `${origin}/mcp`;
  const provider = new RotatingProvider();

  const app = express();
  app.use(
    mcpAuthRouter({
      provider,
      issuerUrl: new URL(origin),
      resourceServerUrl: new URL(url),
      resourceName: 'latchkey third-party test (MCP SDK)',
      // The SDK rate-limits every endpoint by default (50 token requests / 15 min per IP):
      // tests on one machine would trip it. Production deployments keep it.
      authorizationOptions: { rateLimit: false },
      tokenOptions: { rateLimit: false },
      revocationOptions: { rateLimit: false },
      clientRegistrationOptions: { rateLimit: false },
    }),
  );
  app.all(
    '/mcp',
    requireBearerAuth({
      verifier: provider,
      resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(new URL(url)),
      expectedResource: new URL(url),
    }),
    express.json(),
    async (req, res) => {
      // Stateless, as the SDK's example: one server and transport per request.
      const mcp = buildServer();
      const transport = new StreamableHTTPServerTransport({});
      res.on('close', () => void transport.close().then(() => mcp.close()));
      await mcp.connect(transport);
      await transport.handleRequest(req, res, req.body);
    },
  );
  server.on('request', app);

  return {
    url,
    issuer: new URL(origin).href,
    provider,
    close: () => closeServer(server, sockets),
  };
}
