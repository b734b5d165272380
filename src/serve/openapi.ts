/**
 * The OpenAPI 3.1 document served at `/openapi.json`: the API's contract in machine-readable
 * form (docs/serve.md is the prose). test/serve/openapi.test.ts holds it to the route table,
 * so a route cannot be added or renamed without this document following.
 */

import { portalPaths } from './portal-openapi.js';
import { mcpOpenApiPaths } from './mcp-routes.js';
import { opsPaths } from './ops-openapi.js';
import { withScopeErrors } from './scopes.js';
import { SUBJECT_PATTERN } from './subject.js';

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });

const json = (schema: Json, description: string): Json => ({
  description,
  content: { 'application/json': { schema } },
});

const error = (description: string): Json => json(ref('Error'), description);

const SUBJECT: Json = {
  name: 'subject',
  in: 'path',
  required: true,
  description: "The application's user id.",
  schema: { type: 'string', pattern: SUBJECT_PATTERN },
};

const UPSTREAM: Json = {
  name: 'upstream',
  in: 'path',
  required: true,
  description: 'An upstream id from GET /v1/upstreams.',
  schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$' },
};

/** Answers every app-key route can give besides its own. */
const KEYED_ERRORS: Json = {
  '401': error('No app key, or one that is malformed, unknown or deleted.'),
  '400': error('An invalid subject or request.'),
};

const isoTime: Json = { type: ['string', 'null'], format: 'date-time' };

const SCHEMAS: Json = {
  Error: {
    type: 'object',
    required: ['error', 'message'],
    properties: {
      error: { type: 'string', description: 'Stable snake_case code, e.g. login_required.' },
      message: { type: 'string' },
      upstream: { type: 'string' },
      connect_url: { type: 'string', format: 'uri', description: 'Where to POST a new connection.' },
      retry_at: { type: 'string', format: 'date-time' },
    },
  },
  Upstream: {
    type: 'object',
    required: ['id', 'url', 'scopes', 'client'],
    properties: {
      id: { type: 'string' },
      url: { type: 'string', format: 'uri' },
      scopes: { type: ['array', 'null'], items: { type: 'string' } },
      client: { enum: ['dynamic', 'pre-registered'] },
    },
  },
  Connection: {
    type: 'object',
    required: ['upstream', 'state', 'expires_at', 'last_refresh_at', 'last_error', 'scopes'],
    properties: {
      upstream: { type: 'string' },
      state: { enum: ['connected', 'refresh-due', 'retrying', 'needs-login'] },
      expires_at: isoTime,
      last_refresh_at: isoTime,
      last_error: {
        type: ['object', 'null'],
        properties: { code: { type: 'string' }, message: { type: 'string' }, at: { type: 'string' } },
      },
      scopes: { type: 'array', items: { type: 'string' } },
    },
  },
};

function paths(): Json {
  const keyed = { security: [{ appKey: [] }] };
  return {
    '/healthz': { get: { summary: 'The process runs.', responses: { '200': { description: 'ok' } } } },
    '/readyz': {
      get: {
        summary: 'The store answers.',
        responses: { '200': { description: 'ready' }, '503': { description: 'store unavailable' } },
      },
    },
    '/openapi.json': {
      get: { summary: 'This document.', responses: { '200': { description: 'OpenAPI 3.1' } } },
    },
    '/oauth/callback': {
      get: {
        summary: "The AS's redirect after sign-in; the browser is sent on to return_to.",
        responses: {
          '303': { description: 'To return_to with latchkey_status, latchkey_upstream and latchkey_error.' },
          '400': { description: 'Unknown, expired or used state (an HTML page).' },
        },
      },
    },
    '/v1/upstreams': {
      get: {
        ...keyed,
        summary: 'The configured upstream MCP servers.',
        responses: {
          '200': json(
            { type: 'object', properties: { upstreams: { type: 'array', items: ref('Upstream') } } },
            'ok',
          ),
          '401': KEYED_ERRORS['401'],
        },
      },
    },
    '/v1/subjects/{subject}/connections': {
      parameters: [SUBJECT],
      get: {
        ...keyed,
        summary: "The subject's connections and their states.",
        responses: {
          '200': json(
            { type: 'object', properties: { connections: { type: 'array', items: ref('Connection') } } },
            'ok',
          ),
          ...KEYED_ERRORS,
        },
      },
    },
    '/v1/subjects/{subject}/connections/{upstream}': {
      parameters: [SUBJECT, UPSTREAM],
      post: connectOperation(keyed),
      delete: disconnectOperation(keyed),
    },
    '/v1/subjects/{subject}/connections/{upstream}/token': {
      parameters: [SUBJECT, UPSTREAM],
      get: tokenOperation(keyed),
    },
    ...portalPaths(),
    ...mcpOpenApiPaths(SUBJECT, UPSTREAM, ref('Error')),
    ...opsPaths(keyed),
  };
}

function disconnectOperation(keyed: Json): Json {
  return {
    ...keyed,
    summary: 'Revoke at the AS (RFC 7009) and delete; a failed revocation is queued and retried.',
    responses: {
      '200': json(
        {
          type: 'object',
          required: ['upstream', 'revoked', 'pending_revocation'],
          properties: {
            upstream: { type: 'string' },
            revoked: { type: 'array', items: { enum: ['refresh_token', 'access_token'] } },
            pending_revocation: { type: 'array', items: { enum: ['refresh_token', 'access_token'] } },
          },
        },
        'Disconnected.',
      ),
      '404': error('Not connected, or an unknown upstream.'),
      ...KEYED_ERRORS,
    },
  };
}

function tokenOperation(keyed: Json): Json {
  return {
    ...keyed,
    summary: 'An access token valid now (refreshed first if needed); never starts a login.',
    responses: {
      '200': json(
        {
          type: 'object',
          required: ['access_token', 'token_type', 'expires_at'],
          properties: {
            access_token: { type: 'string' },
            token_type: { type: 'string' },
            expires_at: isoTime,
          },
        },
        'ok',
      ),
      '409': error('login_required: the user must connect again (connect_url).'),
      '503': error('temporarily_unavailable: the AS failed transiently (Retry-After).'),
      '404': error('Unknown upstream.'),
      ...KEYED_ERRORS,
    },
  };
}

function connectOperation(keyed: Json): Json {
  return {
    ...keyed,
    summary: 'Start a connection: a single-use sign-in link, valid 10 minutes.',
    requestBody: {
      required: true,
      content: {
        'application/json': {
          schema: {
            type: 'object',
            required: ['return_to'],
            properties: {
              return_to: { type: 'string', format: 'uri', description: 'Where the user lands after.' },
            },
          },
        },
      },
    },
    responses: {
      '201': json(
        {
          type: 'object',
          required: ['authorization_url', 'expires_at'],
          properties: {
            authorization_url: { type: 'string', format: 'uri' },
            expires_at: { type: 'string', format: 'date-time' },
          },
        },
        'Send the user to authorization_url.',
      ),
      '404': error('Unknown upstream.'),
      '413': error('Body over 16 KiB.'),
      '502': error('upstream_auth_failed: discovery failed or the AS refused the client.'),
      ...KEYED_ERRORS,
    },
  };
}

export function openApiDocument(publicUrl: string): Json {
  return {
    openapi: '3.1.0',
    info: { title: 'latchkey serve', version: '1', description: 'See docs/serve.md.' },
    servers: [{ url: publicUrl }],
    components: {
      schemas: SCHEMAS,
      securitySchemes: {
        appKey: { type: 'http', scheme: 'bearer', description: 'latchkey serve keys create' },
      },
    },
    paths: withScopeErrors(paths()),
  };
}
