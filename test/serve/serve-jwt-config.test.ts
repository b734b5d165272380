// The JWT settings of `latchkey serve`: the config file's "jwt", flags over it, and refusals.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { isLatchkeyError } from '../../src/errors.js';
import { jwtSettings } from '../../src/serve/jwt.js';

describe('serve: JWT settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-jwt-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function file(content: unknown): string {
    const path = join(dir, `${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify(content));
    return path;
  }

  const refused = (fn: () => unknown): void =>
    assert.throws(fn, (e: unknown) => isLatchkeyError(e) && e.code === 'INVALID_INPUT');

  it('reads the file, lets flags override it, and is off when neither gives anything', () => {
    const path = file({
      upstreams: [],
      jwt: { issuer: 'https://idp.example.com', audience: 'gw', jwks_uri: 'https://idp.example.com/keys' },
    });
    assert.deepEqual(jwtSettings(path, {}), {
      issuer: 'https://idp.example.com',
      audience: 'gw',
      jwksUri: 'https://idp.example.com/keys',
    });
    assert.equal(jwtSettings(path, { jwtAudience: 'other' })?.audience, 'other');
    assert.equal(jwtSettings(file({ upstreams: [] }), {}), undefined);
    assert.equal(jwtSettings(undefined, {}), undefined);
  });

  it('refuses half a configuration, unknown fields and non-URL issuers', () => {
    refused(() => jwtSettings(undefined, { jwtIssuer: 'https://idp.example.com' }));
    refused(() => jwtSettings(file({ jwt: { issuer: 'https://i', audience: 'a', secret: 'x' } }), {}));
    refused(() => jwtSettings(undefined, { jwtIssuer: 'idp.example.com', jwtAudience: 'a' }));
    refused(() => jwtSettings(undefined, { jwtIssuer: 'https://i', jwtAudience: '' }));
  });
});
