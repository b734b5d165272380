import type { IncomingMessage, ServerResponse } from 'node:http';

import type { AppKeyRecord } from '../store/serve-contract.js';
import { checkedSubject, type ServeContext } from './context.js';
import { requireInScope } from './scopes.js';

/**
 * The operations routes of `latchkey serve`: the event stream and the metrics. Spread into
 * ROUTES (routes.ts); the shape is the route table's.
 */
export const OPS_ROUTES = [
  {
    method: 'GET',
    template: '/v1/events',
    appKey: true,
    handle: async ({ ctx, req, res, url, app }: OpsCall): Promise<void> => {
      const raw = url.searchParams.get('subject');
      // The same check as a path subject: the filter is compared to stored subjects as is.
      const subject = raw === null ? undefined : checkedSubject(encodeURIComponent(raw));
      // A scoped key (scopes.ts) asks for a subject outside its scope: 403, as on a path.
      if (subject !== undefined && app !== undefined) requireInScope(app, subject);
      await ctx.events.open(req, res, subject, app?.subjectPrefix);
    },
  },
  {
    method: 'GET',
    template: '/metrics',
    // No key: the figures name route templates and AS issuers, never a subject or a token, and
    // Prometheus scrapers are easier to point at an open endpoint kept off the public
    // listener by the reverse proxy (docs/serve.md).
    appKey: false,
    handle: async ({ ctx, res }: OpsCall): Promise<void> => {
      const text = await ctx.metrics.render({
        dueBacklog: () => ctx.store.countDue(),
        openStreams: () => ctx.events.size,
      });
      res.writeHead(200, {
        'content-type': 'text/plain; version=0.0.4; charset=utf-8',
        'cache-control': 'no-store',
      });
      res.end(text);
    },
  },
] as const;

interface OpsCall {
  ctx: ServeContext;
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  app?: AppKeyRecord | undefined;
}
