// The OpenAPI document and the route table describe the same API: every route is documented
// with its method, every documented operation is served, and app-key routes say so.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { openApiDocument } from '../../src/serve/openapi.js';
import { ROUTES } from '../../src/serve/routes.js';

type Operation = { security?: unknown[]; responses?: Record<string, unknown> };

describe('serve: /openapi.json', () => {
  const doc = openApiDocument('https://gw.example.com') as {
    openapi: string;
    servers: { url: string }[];
    paths: Record<string, Record<string, unknown>>;
  };

  it('documents exactly the routes that are served', () => {
    const served = ROUTES.map((r) => `${r.method} ${r.template}`).sort();
    const documented = Object.entries(doc.paths)
      .flatMap(([path, item]) =>
        Object.keys(item)
          .filter((k) => k !== 'parameters')
          .map((method) => `${method.toUpperCase()} ${path}`),
      )
      .sort();
    assert.deepEqual(documented, served);
  });

  it('marks app-key routes with the appKey scheme and a 401, and only them', () => {
    for (const route of ROUTES) {
      const op = doc.paths[route.template]?.[route.method.toLowerCase()] as Operation;
      const keyed = op.security !== undefined;
      assert.equal(keyed, route.appKey, `${route.method} ${route.template}`);
      if (route.appKey) assert.ok(op.responses?.['401'] !== undefined, `${route.template} documents 401`);
    }
  });

  it('is OpenAPI 3.1 with the public URL as its server', () => {
    assert.equal(doc.openapi, '3.1.0');
    assert.deepEqual(doc.servers, [{ url: 'https://gw.example.com' }]);
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(doc)));
  });
});
