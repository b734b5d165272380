import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { StringTable } from '../../src/store/string-table.js';

describe('StringTable', () => {
  it('gives back equal strings and stays within its limit', () => {
    const table = new StringTable(4, 32);
    const server = ['https://', 'mcp.example'].join('');
    assert.equal(table.share(server), server);
    assert.equal(table.share(['https://', 'mcp.example'].join('')), 'https://mcp.example');
    assert.equal(table.size, 1);
    for (let n = 0; n < 100; n++) {
      assert.equal(table.share(`value-${n}`), `value-${n}`);
      assert.ok(table.size <= 4, `size ${table.size}`);
    }
    // Long strings (a token would be one) and non-strings are not held.
    const long = 'x'.repeat(33);
    const before = table.size;
    assert.equal(table.share(long), long);
    assert.equal(table.share(undefined), undefined);
    assert.equal(table.size, before);
  });
});
