/** The OpenAPI paths of the operations routes (ops-routes.ts), spread into openapi.ts's. */

type Json = Record<string, unknown>;

const EVENT: Json = {
  type: 'object',
  required: ['id', 'type', 'subject', 'upstream', 'at'],
  properties: {
    id: { type: 'integer', description: 'The store event id; also the SSE id for Last-Event-ID.' },
    type: { enum: ['connected', 'refreshed', 'retrying', 'needs-login', 'disconnected'] },
    subject: { type: 'string' },
    upstream: { type: 'string' },
    at: { type: 'string', format: 'date-time' },
    error: { type: 'string', description: 'needs-login: invalid_grant, invalid_client or no_refresh_token.' },
    reason: { type: 'string', description: 'retrying: why the refresh failed.' },
    retry_at: { type: 'string', format: 'date-time', description: 'retrying: the next attempt.' },
    connect_url: {
      type: 'string',
      format: 'uri',
      description: 'needs-login: where to POST a new connection.',
    },
  },
};

export function opsPaths(keyed: Json): Json {
  return {
    '/v1/events': {
      get: {
        ...keyed,
        summary: 'Server-sent events: lifecycle changes of every subject (or ?subject=) on every instance.',
        parameters: [
          { name: 'subject', in: 'query', required: false, schema: { type: 'string' } },
          { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' } },
        ],
        responses: {
          '200': {
            description: 'text/event-stream; each data line is one Event as JSON.',
            content: { 'text/event-stream': { schema: EVENT } },
          },
          '401': { description: 'No app key, or one that is not valid.' },
          '400': { description: 'An invalid subject.' },
        },
      },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus text format (0.0.4).',
        responses: { '200': { description: 'metrics', content: { 'text/plain': {} } } },
      },
    },
  };
}
