/**
 * The portal's part of /openapi.json (openapi.ts spreads it in). The pages are for browsers,
 * but they are routes like any other, so the document lists them and the test holding the
 * document to ROUTES covers them too.
 */
import { SUBJECT_PATTERN } from './subject.js';

type Json = Record<string, unknown>;

const html = (description: string): Json => ({ description, content: { 'text/html': {} } });

const FORM: Json = {
  required: true,
  content: {
    'application/x-www-form-urlencoded': {
      schema: {
        type: 'object',
        required: ['csrf'],
        properties: { csrf: { type: 'string', description: "The session's CSRF token from the page." } },
      },
    },
  },
};

const UPSTREAM: Json = {
  name: 'upstream',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$' },
};

const REFUSED: Json = {
  '401': html('No portal session (an HTML page).'),
  '403': html('Wrong Origin or CSRF token (an HTML page).'),
};

export function portalPaths(): Json {
  return {
    '/v1/subjects/{subject}/portal': {
      parameters: [
        {
          name: 'subject',
          in: 'path',
          required: true,
          schema: { type: 'string', pattern: SUBJECT_PATTERN },
        },
      ],
      post: {
        security: [{ appKey: [] }],
        summary: 'A single-use link (5 minutes) that signs this user in to the portal page.',
        responses: {
          '201': {
            description: 'Send the user to portal_url.',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['portal_url', 'expires_at'],
                  properties: {
                    portal_url: { type: 'string', format: 'uri' },
                    expires_at: { type: 'string', format: 'date-time' },
                  },
                },
              },
            },
          },
          '401': { description: 'No app key, or one that is malformed, unknown or deleted.' },
          '400': { description: 'An invalid subject.' },
        },
      },
    },
    '/': {
      get: {
        summary: "The portal page: the signed-in user's upstreams, their states, connect and disconnect.",
        responses: { '200': html('The page.'), '401': html('No portal session.') },
      },
    },
    '/portal/open': {
      get: {
        summary: 'Opens a portal link: sets the session cookie and redirects to the page.',
        parameters: [{ name: 'ticket', in: 'query', required: true, schema: { type: 'string' } }],
        responses: { '303': { description: 'To the page.' }, '400': html('Expired or used link.') },
      },
    },
    '/portal/connections/{upstream}/connect': {
      parameters: [UPSTREAM],
      post: {
        summary: 'Starts the connect flow for the signed-in user, returning to the page.',
        requestBody: FORM,
        responses: {
          '200': html('A page that moves on to the AS.'),
          '303': { description: 'Back to the page with latchkey_status=error.' },
          ...REFUSED,
        },
      },
    },
    '/portal/connections/{upstream}/disconnect': {
      parameters: [UPSTREAM],
      post: {
        summary: "Disconnects the signed-in user's connection (revoked at the AS, deleted).",
        requestBody: FORM,
        responses: { '303': { description: 'Back to the page with latchkey_status.' }, ...REFUSED },
      },
    },
    '/portal/sign-out': {
      post: {
        summary: 'Ends the portal session.',
        requestBody: FORM,
        responses: { '200': html('Signed out.'), ...REFUSED },
      },
    },
  };
}
