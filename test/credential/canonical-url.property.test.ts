// Properties of canonicalServer (src/credential/key.ts): the credential key and the RFC 8707
// resource every discovery and token request uses (AUTH-38..AUTH-40).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { canonicalServer } from '../../src/credential/key.js';

interface Parts {
  scheme: 'http' | 'https';
  host: string;
  port: '' | 'default' | number;
  userinfo: string;
  path: string;
  query: string | undefined;
}

const parts: fc.Arbitrary<Parts> = fc.record({
  scheme: fc.constantFrom('http' as const, 'https' as const),
  host: fc.oneof(fc.domain(), fc.ipV4()),
  port: fc.oneof(
    fc.constant('' as const),
    fc.constant('default' as const),
    fc.integer({ min: 1, max: 65535 }),
  ),
  userinfo: fc.oneof(
    fc.constant(''),
    fc.stringMatching(/^[a-z0-9]{1,8}(:[a-z0-9]{0,8})?$/).map((u) => `${u}@`),
  ),
  path: fc.oneof(fc.constant(''), fc.constant('/'), fc.webPath()),
  query: fc.option(fc.webQueryParameters(), { nil: undefined }),
});
const fragment = fc.webFragments();

function build(p: Parts, overrides: { scheme?: string; host?: string; userinfo?: string } = {}): string {
  const defaultPort = p.scheme === 'https' ? 443 : 80;
  const port = p.port === '' ? '' : `:${p.port === 'default' ? defaultPort : p.port}`;
  const query = p.query === undefined ? '' : `?${p.query}`;
  return `${overrides.scheme ?? p.scheme}://${overrides.userinfo ?? p.userinfo}${overrides.host ?? p.host}${port}${p.path}${query}`;
}

const runs = { numRuns: 1000 };

describe('canonicalServer: properties', () => {
  it('is idempotent (inputs without a fragment)', () => {
    fc.assert(
      fc.property(parts, (p) => {
        const once = canonicalServer(build(p));
        assert.equal(canonicalServer(once), once);
      }),
      runs,
    );
  });

  it('the case of scheme and host does not matter', () => {
    fc.assert(
      fc.property(parts, fc.array(fc.boolean(), { minLength: 300, maxLength: 300 }), (p, mask) => {
        const recase = (text: string): string =>
          Array.from(text, (c, i) => (mask[i] === true ? c.toUpperCase() : c)).join('');
        const shouted = build(p, { scheme: recase(p.scheme), host: recase(p.host) });
        assert.equal(canonicalServer(shouted), canonicalServer(build(p)));
      }),
      runs,
    );
  });

  it('userinfo is dropped', () => {
    fc.assert(
      fc.property(parts, (p) => {
        assert.equal(
          canonicalServer(build(p, { userinfo: 'someone:secret@' })),
          canonicalServer(build(p, { userinfo: '' })),
        );
      }),
      runs,
    );
  });

  it('an explicit default port is dropped', () => {
    fc.assert(
      fc.property(parts, (p) => {
        assert.equal(
          canonicalServer(build({ ...p, port: 'default' })),
          canonicalServer(build({ ...p, port: '' })),
        );
      }),
      runs,
    );
  });

  it('the result has a lowercase scheme and host and no userinfo, fragment or default port', () => {
    fc.assert(
      fc.property(parts, fragment, (p, frag) => {
        const canonical = canonicalServer(`${build(p)}#${frag}`);
        const url = new URL(canonical);
        assert.ok(!canonical.includes('#'), canonical);
        assert.equal(url.username, '');
        assert.equal(url.password, '');
        assert.ok(canonical.startsWith(`${p.scheme}://${url.host}`), canonical);
        assert.equal(url.host, url.host.toLowerCase());
        assert.notEqual(url.port, p.scheme === 'https' ? '443' : '80');
      }),
      runs,
    );
  });

  it('drops the fragment and is idempotent for every input', () => {
    fc.assert(
      fc.property(parts, fragment, (p, frag) => {
        const once = canonicalServer(`${build(p)}#${frag}`);
        assert.equal(once, canonicalServer(build(p)));
        assert.equal(canonicalServer(once), once);
      }),
      runs,
    );
  });

  it('examples from AUTH-38..40', () => {
    assert.equal(canonicalServer('HTTPS://MCP.Example.COM:443/mcp#x'), 'https://mcp.example.com/mcp');
    assert.equal(canonicalServer('https://mcp.example.com'), 'https://mcp.example.com');
    assert.equal(canonicalServer('https://mcp.example.com/mcp/'), 'https://mcp.example.com/mcp/');
    assert.equal(
      canonicalServer('https://user:pw@mcp.example.com:8443/a?b=c'),
      'https://mcp.example.com:8443/a?b=c',
    );
  });
});
